// shell/vf/vf_switch.h — moving a shell's queues between the emulated path and
// a VF (control.proto: VfOffer/VfAccept, Revoke/RevokeDone). The steps are
// the states of one table, npa_shell::path (path_switch.h); this file runs
// the step of each state and feeds the machine the results.
//
//   InstallVfHooks(sh);   // npa_shell_open, when there is a control session
//   ...
//   ReleaseVf(sh, "the guest stopped its queues", /*notify=*/true);  // npa_shell_stop
//
// Attach (VfOffer + device fd; EMULATED -> ATTACHING -> ENTERING -> ON_VF):
// plug-in by PCI identity, services over the fd, probe -> get_caps ->
// configure (the guest's MAC, MTU, queue count and offloads) -> start, then
// every queue is switched at its next burst; the emulated rings keep being
// drained (failsafe: switch TX first, keep receiving on the old path until it
// is drained). An offer the table refuses (a VF already attached) is
// declined with the reason.
//
// Revoke (planned) and fallback (VFIO REQ or ERR fired, or the shell
// stopping): the same steps backwards, each bounded in time —
//   1. LEAVING: TX and RX off the VF (the owner acks at a burst boundary),
//      so no fast op runs while the plug-in quiesces;
//   2. QUIESCING: the VF finishes the TX it holds;
//   3. DRAINING: the VF's RX is polled again until a burst comes back empty
//      and then for a short grace while frames still arrive (DrainGrace);
//   4. RETURNING, RELEASING: emulated only; stop (the plug-in hands every
//      buffer back), remove, close the device fd; RevokeDone (unsolicited
//      after a fallback). -> EMULATED.
// A queue whose owner does not burst within the bound is taken as idle: its
// staged ops are applied at its next burst. A revoke or REQ/ERR the table
// refuses (the VF is already released) is logged and ignored: the revoke is
// still answered, with nothing lost.
//
// Threads — who calls what:
//   control thread (ControlClient): OnOffer / OnRevoke (the hooks) and the
//       REQ/ERR watches: every plug-in control op (probe, get_caps,
//       configure, start, quiesce, queue_stats, stop, remove) and every
//       step's wait for the queues' acks. It holds npa_shell::vf_mu
//       throughout, so one switch runs at a time.
//   the application thread in npa_shell_stop / npa_shell_close: ReleaseVf,
//       the same steps, under vf_mu (the control thread is stopped first at
//       close).
//   each queue's owning thread, in npa_rx_burst / npa_tx_burst /
//       npa_queue_intr_enable: applies staged ops (its ack), then the VF's
//       fast ops (rx_burst, tx_burst, rx_intr_enable). Never waits for vf_mu.
//   npa_shell_queue_stats (any thread): queue_stats, only if vf_mu is free.
// The plug-in's buf_alloc/buf_free (ShellBuffers, shell_buffers.h) come
// from both the owning thread (fast ops: the queue's pool) and the control
// thread (control ops: the queue's stash); the control path says which by
// holding a ShellBuffers::ControlCall around exactly its plug-in control
// calls (probe..start in ATTACHING, quiesce in QUIESCING, stop + remove in
// RELEASING), so the rule is visible where the calls are made.
#ifndef NPA_SHELL_VF_VF_SWITCH_H_
#define NPA_SHELL_VF_VF_SWITCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "npa/shell.h"
#include "shell/vf/drain_grace.h"
#include "shell/vf/shell_buffers.h"
#include "shell/vf/vf_services.h"

namespace npa::control {
class VfOffer;
}

namespace npa::shell {

// Bytes at the end of the shared region reserved for plug-in DMA memory
// (descriptor rings, status blocks): enough for 16 queue pairs of 4096-entry
// rings of 16-byte descriptors, with room to spare.
inline constexpr size_t kVfDmaReserve = 4u << 20;

// Registers the VfOffer / Revoke hooks on sh->control. Call before the
// control thread starts.
void InstallVfHooks(npa_shell* sh);

// Give up the VF without the agent asking (npa_shell_stop, npa_shell_close):
// the fallback steps with short bounds. With notify, tell the agent with an
// unsolicited RevokeDone. No-op without a VF (the table refuses the stop).
void ReleaseVf(npa_shell* sh, const char* why, bool notify);

// npa_shell_set_rss, after the new configuration is in force (sh->mu not
// held): replays it into the attached VF's plug-in when it has hardware
// RSS (VfPath::SetRss); a failure is logged. Takes vf_mu, so it waits for
// a switch in progress (bounded); an attach that starts later reads the
// new configuration itself.
void ReplayRssToVf(npa_shell* sh);

// TEST ONLY: whether the owner of queue 0 sends the RARP announcement
// through a VF it has just switched to (default true). Tests that count the
// frames a loopback VF reflects one by one (vf_offload_test.cc) turn it off
// through the fixture. Process-wide.
void SetAnnounceOnAttachForTest(bool on);

// TEST ONLY: stand in for the VFIO device behind an offered fd. The factory
// gets the offered fd (still owned by the shell) and the offer; return null
// to use the real fd. Process-wide; pass nullptr to reset.
using VfDeviceIoFactory =
    std::function<std::unique_ptr<VfioDeviceIo>(int fd, const control::VfOffer& offer)>;
void SetVfDeviceIoFactoryForTest(VfDeviceIoFactory f);

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_VF_SWITCH_H_
