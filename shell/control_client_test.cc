#include "shell/control_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "common/unix_socket.h"
#include "gtest/gtest.h"
#include "tests/support/fake_agent_test_util.h"

namespace npa::shell {
namespace {

struct Pair {
  UniqueFd shell, agent;
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    shell.reset(sv[0]);
    agent.reset(sv[1]);
  }
};

bool WaitEvent(EventQueue& q, npa_event* ev) {
  pollfd p{q.fd(), POLLIN, 0};
  if (poll(&p, 1, 3000) != 1) return false;
  ev->struct_size = sizeof *ev;
  return q.Pop(ev) == 1;
}

TEST(ControlClientTest, HandshakeThenLinkStatsVfOfferRevokeBye) {
  Pair p;
  FakeAgent agent(std::move(p.agent));
  std::thread t([&] {
    auto h = agent.ExpectHello();
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->hello().name(), "g1");
    EXPECT_EQ(h->hello().queue_pairs(), 2u);
    ASSERT_TRUE(agent.Welcome().ok());
  });
  ControlClient::Hello hello;
  hello.name = "g1";
  hello.queue_pairs = 2;
  auto cc = ControlClient::Handshake(std::move(p.shell), hello, 3000);
  t.join();
  ASSERT_TRUE(cc.ok()) << cc.status();
  EXPECT_EQ((*cc)->welcome().mac[5], 7);
  EXPECT_TRUE((*cc)->welcome().link_up);
  UniqueFd vfd = (*cc)->TakeVhostFd();
  EXPECT_TRUE(vfd.valid());

  EventQueue events;
  ASSERT_TRUE(events.Init().ok());
  ASSERT_TRUE((*cc)->Start(&events, [] {
                  control::QueueCounters q;
                  q.set_queue(0);
                  q.set_rx_packets(11);
                  return std::vector<control::QueueCounters>{q};
                }).ok());

  control::Envelope e;
  e.mutable_link()->set_up(false);
  ASSERT_TRUE(agent.Send(e).ok());
  npa_event ev;
  ASSERT_TRUE(WaitEvent(events, &ev));
  EXPECT_EQ(ev.type, NPA_EVENT_LINK_CHANGED);
  EXPECT_EQ(ev.u.link_up, 0u);
  EXPECT_FALSE((*cc)->link_up());

  e.Clear();
  e.mutable_stats_request();
  ASSERT_TRUE(agent.Send(e).ok());
  auto r = agent.Receive();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->env.has_stats_reply());
  ASSERT_EQ(r->env.stats_reply().queues_size(), 1);
  EXPECT_EQ(r->env.stats_reply().queues(0).rx_packets(), 11u);

  e.Clear();
  e.mutable_vf_offer()->set_offer_id(9);
  int vf = eventfd(0, EFD_CLOEXEC);
  int fds[1] = {vf};
  ASSERT_TRUE(agent.Send(e, fds).ok());
  close(vf);
  r = agent.Receive();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->env.has_vf_accept());
  EXPECT_EQ(r->env.vf_accept().offer_id(), 9u);
  EXPECT_FALSE(r->env.vf_accept().accepted());
  EXPECT_FALSE(r->env.vf_accept().reason().empty());

  e.Clear();
  e.mutable_revoke()->set_offer_id(9);
  ASSERT_TRUE(agent.Send(e).ok());
  r = agent.Receive();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->env.has_revoke_done());
  EXPECT_EQ(r->env.revoke_done().offer_id(), 9u);

  e.Clear();
  e.mutable_bye()->set_reason("maintenance");
  ASSERT_TRUE(agent.Send(e).ok());
  ASSERT_TRUE(WaitEvent(events, &ev));
  EXPECT_EQ(ev.type, NPA_EVENT_ERROR);
  EXPECT_LT(ev.u.error, 0);
  EXPECT_NE(std::string(ev.detail).find("maintenance"), std::string::npos) << ev.detail;
  (*cc)->Stop();
}

TEST(ControlClientTest, EofBecomesErrorEventAndStopIsClean) {
  Pair p;
  FakeAgent agent(std::move(p.agent));
  std::thread t([&] {
    ASSERT_TRUE(agent.ExpectHello().ok());
    ASSERT_TRUE(agent.Welcome().ok());
  });
  auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
  t.join();
  ASSERT_TRUE(cc.ok());
  EventQueue events;
  ASSERT_TRUE(events.Init().ok());
  ASSERT_TRUE((*cc)->Start(&events, nullptr).ok());
  agent.Close();
  npa_event ev;
  ASSERT_TRUE(WaitEvent(events, &ev));
  EXPECT_EQ(ev.type, NPA_EVENT_ERROR);
  (*cc)->Stop();
  (*cc)->Stop();  // idempotent
}

TEST(ControlClientTest, WelcomeWithoutFdIsRejected) {
  Pair p;
  FakeAgent agent(std::move(p.agent));
  std::thread t([&] {
    ASSERT_TRUE(agent.ExpectHello().ok());
    ASSERT_TRUE(agent.Welcome(0).ok());
  });
  auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
  t.join();
  ASSERT_FALSE(cc.ok());
  EXPECT_NE(cc.status().message().find("expected 1"), std::string::npos) << cc.status();
}

TEST(ControlClientTest, AgentErrorAndWrongFirstMessage) {
  {
    Pair p;
    FakeAgent agent(std::move(p.agent));
    std::thread t([&] {
      ASSERT_TRUE(agent.ExpectHello().ok());
      control::Envelope e;
      e.mutable_error()->set_message("no such guest slot");
      ASSERT_TRUE(agent.Send(e).ok());
    });
    auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
    t.join();
    ASSERT_FALSE(cc.ok());
    EXPECT_NE(cc.status().message().find("no such guest slot"), std::string::npos);
  }
  {
    Pair p;
    FakeAgent agent(std::move(p.agent));
    std::thread t([&] {
      ASSERT_TRUE(agent.ExpectHello().ok());
      control::Envelope e;
      e.mutable_link()->set_up(true);
      ASSERT_TRUE(agent.Send(e).ok());
    });
    auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
    t.join();
    ASSERT_FALSE(cc.ok());
    EXPECT_EQ(cc.status().code(), absl::StatusCode::kDataLoss) << cc.status();
  }
}

TEST(ControlClientTest, UnexpectedMessageEndsTheSession) {
  Pair p;
  FakeAgent agent(std::move(p.agent));
  std::thread t([&] {
    ASSERT_TRUE(agent.ExpectHello().ok());
    ASSERT_TRUE(agent.Welcome().ok());
  });
  auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
  t.join();
  ASSERT_TRUE(cc.ok());
  EventQueue events;
  ASSERT_TRUE(events.Init().ok());
  ASSERT_TRUE((*cc)->Start(&events, nullptr).ok());
  control::Envelope e;
  e.mutable_hello()->set_name("confused");
  ASSERT_TRUE(agent.Send(e).ok());
  auto r = agent.Receive();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->env.has_error());
  npa_event ev;
  ASSERT_TRUE(WaitEvent(events, &ev));
  EXPECT_EQ(ev.type, NPA_EVENT_ERROR);
  EXPECT_EQ(ev.u.error, -EPROTO);
}

// Without session hooks (a shell that cannot migrate) a MigratePrepare is
// answered with an error and the session goes on.
TEST(ControlClientTest, MigratePrepareWithoutHooksIsRefused) {
  Pair p;
  FakeAgent agent(std::move(p.agent));
  std::thread t([&] {
    ASSERT_TRUE(agent.ExpectHello().ok());
    ASSERT_TRUE(agent.Welcome().ok());
  });
  auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
  t.join();
  ASSERT_TRUE(cc.ok());
  EventQueue events;
  ASSERT_TRUE(events.Init().ok());
  ASSERT_TRUE((*cc)->Start(&events, nullptr).ok());
  control::Envelope e;
  e.mutable_migrate_prepare()->set_migration_id(5);
  ASSERT_TRUE(agent.Send(e).ok());
  auto r = agent.Receive();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->env.has_migrate_ready());
  EXPECT_EQ(r->env.migrate_ready().migration_id(), 5u);
  EXPECT_EQ(r->env.migrate_ready().error().code(), control::Error::UNEXPECTED);
  e.Clear();
  e.mutable_stats_request();
  ASSERT_TRUE(agent.Send(e).ok());
  r = agent.Receive();
  ASSERT_TRUE(r.ok()) << "the session went on";
  EXPECT_TRUE(r->env.has_stats_reply());
}

// EOF and Bye go to the lost hook, which may replace the session in place
// (Reconnect): the thread then serves the new one, Hello.resume included.
// An Error from the agent is never retried.
TEST(ControlClientTest, ALostSessionIsReplacedInPlaceByTheHook) {
  const std::string path = "/tmp/npa_cc_test." + std::to_string(getpid()) + ".ctl";
  auto l = ListenUnix(path);
  ASSERT_TRUE(l.ok()) << l.status();
  UniqueFd lfd = std::move(*l);
  Pair p;
  FakeAgent first(std::move(p.agent));
  std::thread t([&] {
    ASSERT_TRUE(first.ExpectHello().ok());
    ASSERT_TRUE(first.Welcome().ok());
  });
  auto cc = ControlClient::Handshake(std::move(p.shell), {}, 3000);
  t.join();
  ASSERT_TRUE(cc.ok());
  ControlClient* c = cc->get();
  std::atomic<int> lost{0};
  std::mutex why_mu;
  std::string why;
  ControlClient::SessionHooks h;
  h.lost = [&](const std::string& w) {
    {
      std::lock_guard<std::mutex> g(why_mu);
      why = w;
    }
    if (lost++ > 0) return false;  // the second time: give up
    ControlClient::Hello again;
    again.name = "g1";
    again.resume.emplace();
    again.resume->add_vrings()->set_next_avail(77);
    absl::Status s = c->Reconnect(path, again, 3000, {});
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_TRUE(c->TakeVhostFd().valid());
    return s.ok();
  };
  c->SetSessionHooks(std::move(h));
  EventQueue events;
  ASSERT_TRUE(events.Init().ok());
  ASSERT_TRUE(c->Start(&events, nullptr).ok());

  std::unique_ptr<FakeAgent> second;
  std::thread t2([&] {
    pollfd pf{lfd.get(), POLLIN, 0};
    ASSERT_EQ(poll(&pf, 1, 5000), 1);
    second = std::make_unique<FakeAgent>(UniqueFd(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC)));
    auto hello = second->ExpectHello();
    ASSERT_TRUE(hello.ok()) << hello.status();
    ASSERT_TRUE(hello->hello().has_resume());
    EXPECT_EQ(hello->hello().resume().vrings(0).next_avail(), 77u);
    ASSERT_TRUE(second->Welcome().ok());
  });
  control::Envelope e;
  e.mutable_bye()->set_reason("upgrade");
  ASSERT_TRUE(first.Send(e).ok());
  t2.join();
  ASSERT_TRUE(second);
  // The new session is served: stats go to the second agent.
  e.Clear();
  e.mutable_stats_request();
  ASSERT_TRUE(second->Send(e).ok());
  auto r = second->Receive();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->env.has_stats_reply());
  EXPECT_EQ(lost.load(), 1);
  {
    std::lock_guard<std::mutex> g(why_mu);
    EXPECT_NE(why.find("upgrade"), std::string::npos) << why;
  }
  // An Error is the agent's word: no lost hook, NPA_EVENT_ERROR.
  e.Clear();
  e.mutable_error()->set_message("go away");
  ASSERT_TRUE(second->Send(e).ok());
  npa_event ev;
  ASSERT_TRUE(WaitEvent(events, &ev));
  EXPECT_EQ(ev.type, NPA_EVENT_ERROR);
  EXPECT_EQ(lost.load(), 1);
  c->Stop();
  unlink(path.c_str());
}

}  // namespace
}  // namespace npa::shell
