#include "shell/reconnect_fixture.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "common/unix_socket.h"
#include "shell/vf/vf_switch.h"

namespace npa::shell {

TestAgent::TestAgent(std::string path, std::string name)
    : path_(std::move(path)), name_(std::move(name)) {
  auto l = ListenUnix(path_);
  EXPECT_TRUE(l.ok()) << l.status();
  if (l.ok()) listen_ = std::move(*l);
}

TestAgent::~TestAgent() {
  if (thread_.joinable()) thread_.join();
  backend_.reset();
  agent_.reset();
  Unlisten();
}

void TestAgent::Unlisten() {
  if (listen_) unlink(path_.c_str());
  listen_.reset();
}

void TestAgent::Serve() {
  if (thread_.joinable()) thread_.join();
  ok_ = false;
  thread_ = std::thread([this] {
    pollfd p{listen_.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
      ADD_FAILURE() << name_ << ": no connection";
      return;
    }
    UniqueFd c(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid()) {
      ADD_FAILURE() << name_ << ": accept failed";
      return;
    }
    backend_.reset();
    agent_ = std::make_unique<FakeAgent>(std::move(c));
    auto h = agent_->ExpectHello();
    if (!h.ok() || !h->has_hello()) {
      ADD_FAILURE() << name_ << ": no hello";
      return;
    }
    hello_ = h->hello();
    // The Welcome gives the MAC the shell asked for (or the fixture's).
    std::string mac = hello_.mac().size() == 6 ? hello_.mac() : std::string("\x02\x00\x00\x00\x00\x07", 6);
    control::Envelope e;
    auto* w = e.mutable_welcome();
    w->set_guest_id(42);
    w->set_mac(mac);
    w->set_mtu(1500);
    w->set_max_queue_pairs(4);
    w->set_link_up(true);
    w->set_agent_name(name_);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      ADD_FAILURE() << "socketpair";
      return;
    }
    UniqueFd mine(sv[0]), peer(sv[1]);
    int fd = mine.get();
    if (!agent_->Send(e, {&fd, 1}).ok()) {
      ADD_FAILURE() << name_ << ": welcome";
      return;
    }
    mine.reset();
    auto b = LoopbackBackend::Create(std::move(peer), name_);
    if (!b.ok()) {
      ADD_FAILURE() << b.status();
      return;
    }
    backend_ = std::move(*b);
    // A resumed shell announces its regions at once; a new one at configure
    // (the test takes it there).
    if (hello_.has_resume()) {
      auto f = agent_->Receive(10000);
      if (!f.ok() || !f->env.has_regions()) {
        ADD_FAILURE() << name_ << ": no region announce after the resume";
        return;
      }
    }
    ok_ = true;
  });
}

bool TestAgent::Wait() {
  if (thread_.joinable()) thread_.join();
  return ok_;
}

absl::StatusOr<ControlFrame> TestAgent::Receive(int ms) {
  if (!agent_) return absl::FailedPreconditionError("no session");
  return agent_->Receive(ms);
}

control::MigrateReady TestAgent::Prepare(uint64_t id) {
  control::Envelope e;
  e.mutable_migrate_prepare()->set_migration_id(id);
  e.mutable_migrate_prepare()->set_timeout_ms(2000);
  EXPECT_TRUE(agent_->Send(e).ok());
  for (int i = 0; i < 8; i++) {
    auto f = agent_->Receive(10000);
    if (!f.ok()) break;
    if (f->env.has_migrate_ready()) return f->env.migrate_ready();
  }
  ADD_FAILURE() << name_ << ": no migrate_ready";
  return {};
}

void TestAgent::Abort(uint64_t id) {
  control::Envelope e;
  e.mutable_migrate_abort()->set_migration_id(id);
  e.mutable_migrate_abort()->set_reason("test abort");
  EXPECT_TRUE(agent_->Send(e).ok());
}

void TestAgent::Commit(uint64_t id, const std::string& to, const std::string& ticket,
                       const std::string& agent_name, uint32_t timeout_ms,
                       const std::string& return_path) {
  control::Envelope e;
  auto* c = e.mutable_migrate_commit();
  c->set_migration_id(id);
  c->set_control_path(to);
  c->set_ticket(ticket);
  c->set_agent_name(agent_name);
  c->set_timeout_ms(timeout_ms);
  c->set_return_path(return_path);
  EXPECT_TRUE(agent_->Send(e).ok());
}

control::VfAccept TestAgent::Offer(uint64_t id, uint32_t ven, uint32_t dev) {
  control::Envelope e;
  auto* o = e.mutable_vf_offer();
  o->set_pci_address("0000:00:05.0");
  o->set_vendor(ven);
  o->set_device(dev);
  o->set_subsystem_vendor(0x1d0f);
  o->set_subsystem_device(1);
  o->set_class_code(0x020000);
  o->set_offer_id(id);
  UniqueFd fake(eventfd(0, EFD_CLOEXEC));
  int fd = fake.get();
  EXPECT_TRUE(agent_->Send(e, {&fd, 1}).ok());
  for (int i = 0; i < 8; i++) {
    auto f = agent_->Receive(10000);
    if (!f.ok()) break;
    if (f->env.has_vf_accept()) return f->env.vf_accept();
  }
  ADD_FAILURE() << name_ << ": no vf_accept";
  return {};
}

void TestAgent::Die() {
  backend_.reset();
  agent_.reset();
}

// ---------------------------------------------------------- ReconnectTest --

void ReconnectTest::SetUp() {
  dir_ = "/tmp/npa_reconnect_test." + std::to_string(getpid());
  mkdir(dir_.c_str(), 0700);
}

void ReconnectTest::TearDown() {
  if (guest_) guest_->Finish();
  guest_.reset();
  if (sh_) npa_shell_close(sh_);
  sh_ = nullptr;
  agents_.clear();      // each removes its socket
  // Undo what a test that attached a VF set (UseFakeVf in the test).
  SetVfDeviceIoFactoryForTest(nullptr);
  SetAnnounceOnAttachForTest(true);
  unsetenv("NPA_PLUGIN_PATH");
  rmdir(dir_.c_str());
}

TestAgent& ReconnectTest::NewAgent(const std::string& file, const std::string& name) {
  agents_.push_back(std::make_unique<TestAgent>(dir_ + "/" + file, name));
  return *agents_.back();
}

void ReconnectTest::OpenShell(TestAgent& a, uint32_t reconnect_ms) {
  a.Serve();
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = a.path().c_str();
  oa.name = "mguest";
  oa.flags = NPA_SHELL_F_NO_HUGEPAGES;
  oa.reconnect_ms = reconnect_ms;
  int rc = npa_shell_open(&oa, &sh_);
  ASSERT_TRUE(a.Wait());
  ASSERT_EQ(rc, 0) << npa_shell_last_error(nullptr);
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 256;
  ASSERT_EQ(npa_shell_configure(sh_, &qc), 0) << npa_shell_last_error(nullptr);
  auto f = a.Receive(10000);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->env.has_regions());
  ASSERT_EQ(npa_shell_start(sh_), 0) << npa_shell_last_error(nullptr);
}

bool ReconnectTest::NextEvent(npa_event_type type, npa_event* ev, int ms) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    ev->struct_size = sizeof *ev;
    int r = npa_shell_next_event(sh_, ev);
    if (r == 1 && ev->type == type) return true;
    if (r == 0) usleep(1000);
  }
  return false;
}

}  // namespace npa::shell
