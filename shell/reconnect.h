// shell/reconnect.h — the shell follows its rings: migration between agents
// (control.proto MigratePrepare / MigrateAbort / MigrateCommit;
// docs/migration.md) and reconnecting by itself after the agent went away
// (an agent restart, issue 9). Both move which agent serves the emulated
// rings without touching the rings: the same regions (memory table), the
// same descriptors and buffers, resumed at the indices where they stopped.
//
//   InstallSessionHooks(sh);   // npa_shell_open, with a control session
//
// This file decides when the rings move; shell/resume.h makes the attempts
// (one resume, and the loops and the timer that repeat it).
//
// Steps, each one a state of npa_shell::path (shell/vf/path_switch.h), asked
// before it is taken:
//   MigratePrepare (EMULATED -> MIGRATE_STOPPED): GET_VRING_BASE on every
//     vring, TX rings first (the source's back end stops each and says
//     where it would take the next avail entry; a frame it is already
//     forwarding to this guest still finds RX running), MigrateReady{vrings: next_avail and the used
//     index read from shared memory, counters}. Refused with
//     MigrateReady.error when the table says no (a VF is attached, another
//     migration is under way): nothing stops then. Meanwhile npa_tx_burst
//     takes frames while the TX ring has room (they wait), RX is quiet.
//   MigrateAbort (MIGRATE_STOPPED -> EMULATED): every vring restarted on the
//     same back end at the stopped indices (SET_VRING_NUM/BASE/ADDR, KICK,
//     CALL, ENABLE) and kicked. Nothing is posted twice. If the source cannot
//     restart them, it is treated as gone: RECONNECTING to it, as below.
//   MigrateCommit (MIGRATE_STOPPED -> RECONNECTING -> EMULATED): the source's
//     sessions are closed; Hello{same name, MAC, queue pairs, features,
//     resume{ticket, vrings, counters}} to control_path; the Welcome's
//     vhost-user fd gets the same features, the same memory table and every
//     vring at its stopped index; RegionAnnounce again; NPA_EVENT_MIGRATED
//     with the destination's name.
//   Destination not answering: it is retried every 50-100 ms for
//     MigrateCommit.timeout_ms (0: npa_shell_open_args.reconnect_ms); then
//     the source (return_path) the same way with the same ticket (the
//     source keeps the guest that long) -> NPA_EVENT_RECONNECTED naming it.
//     If neither takes it: RECONNECTING -> DETACHED, NPA_EVENT_ERROR
//     (-EHOSTUNREACH, both reasons in the detail), the rings are kept as
//     they are, and the control thread retries both once a second (DETACHED
//     -> RECONNECTING) until the shell is closed.
//   Session lost (EOF, a socket error or Bye; not an Error, which the agent
//     means): NPA_EVENT_LINK_CHANGED(down); EMULATED or MIGRATE_STOPPED ->
//     RECONNECTING; the old vhost-user session is closed first (a half-dead
//     agent stops serving), then the same control path is retried every
//     50-100 ms for reconnect_ms with Hello.resume{no ticket, every vring at
//     the used index in shared memory (or the stopped index when stopped)}.
//     Then LINK_CHANGED(up) and NPA_EVENT_RECONNECTED. On a VF (ON_VF) the
//     VF keeps forwarding and the emulated rings are resumed beside it: the
//     attempts run from a timerfd the control thread watches beside the
//     VF's REQ and ERR eventfds (a REQ while no agent runs is served at
//     once), 50-100 ms apart for reconnect_ms, then NPA_EVENT_ERROR
//     (-EHOSTUNREACH) and once a second until an agent takes the rings or
//     the shell closes. A VF that leaves meanwhile hands over to the
//     emulated path's RECONNECTING and DETACHED as above.
//     NPA_SHELL_F_NO_RECONNECT: NPA_EVENT_ERROR at once, as before ABI 1.2.
//
// Loss, after an agent went away without stopping its rings: an RX buffer
// the dead agent had taken is taken again by the new one (none leaks); a
// frame it had written into one but not published is lost on the host side
// (the shell cannot see it; the host's counters died with the agent). A TX
// frame in flight (avail entries past the used index) is taken again: sent
// once, or twice if the dead agent had already put it on the wire; never
// lost; counted in npa_queue_stats.tx_resubmitted. After a planned
// migration both sides stopped cleanly: nothing lost, nothing twice.
//
// Threads: every step runs on the control thread (ControlClient's session
// hooks), under npa_shell::vf_mu (the table; lock order vf_mu, then mu) and
// npa_shell::mu while the front end is replaced. The queues' owners keep
// bursting throughout; the fast path is untouched.
#ifndef NPA_SHELL_RECONNECT_H_
#define NPA_SHELL_RECONNECT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/control_codec.h"
#include "npa/shell.h"
#include "shell/control_client.h"
#include "shell/region.h"
#include "shell/rss_rx.h"

namespace npa::shell {

inline constexpr uint32_t kDefaultReconnectMs = 3000;

// Registers the migration and session-loss hooks on sh->control. Call
// before the control thread starts.
void InstallSessionHooks(npa_shell* sh);

// The shell's totals per queue (StatsReply, Hello.resume, MigrateReady).
std::vector<control::QueueCounters> CollectCounters(npa_shell* sh);

// RegionAnnounce for `region` (the whole region at iova == address, its
// memfd): at configure and after every resume on a new agent.
absl::Status AnnounceRegions(ControlClient* cc, const Region& region);
// The shell's RSS configuration to the agent (control::RssConfig), so the
// agent spreads the guest's RX by the same table: when the shell has
// NPA_OFFLOAD_RSS_HASH, more than one queue pair and an agent whose Welcome
// says rss_spread; otherwise nothing is sent and OK is returned. After
// configure, after npa_shell_set_rss and after every (re)connect. rss is
// the configuration in force (sh->rss, read under sh->mu by the caller).
absl::Status SendRssConfig(npa_shell* sh, const RssRx* rss);

}  // namespace npa::shell

#endif  // NPA_SHELL_RECONNECT_H_
