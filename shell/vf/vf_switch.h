// shell/vf/vf_switch.h — moving a shell's queues between the emulated path and
// a VF (control.proto: VfOffer/VfAccept, Revoke/RevokeDone), on the control
// thread.
//
//   InstallVfHooks(sh);   // npa_shell_open, when there is a control session
//
// Attach (VfOffer + device fd): plug-in by PCI identity, services over the
// fd, probe -> get_caps -> configure (the guest's MAC, MTU, queue count and
// offloads) -> start, then every queue is switched at its next burst; the
// emulated rings keep being drained (failsafe: switch TX first, keep receiving on the old path until it is drained).
//
// Revoke (planned) and fallback (VFIO REQ or ERR fired): the same steps
// backwards, each bounded in time —
//   1. TX and RX off the VF (the owner acks at a burst boundary), so no fast
//      op runs while the plug-in quiesces;
//   2. quiesce: the VF finishes the TX it holds;
//   3. drain: the VF's RX is polled again until a burst comes back empty;
//   4. emulated only; stop (the plug-in hands every buffer back), remove,
//      close the device fd; RevokeDone (unsolicited after a fallback).
// A queue whose owner does not burst within the bound is taken as idle: its
// staged ops are applied at its next burst.
#ifndef NPA_SHELL_VF_VF_SWITCH_H_
#define NPA_SHELL_VF_VF_SWITCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "npa/shell.h"
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
// unsolicited RevokeDone. No-op without a VF.
void ReleaseVf(npa_shell* sh, const char* why, bool notify);

// Makes sh->vf_buffers (the plug-in's BufferProvider) for a configured shell.
std::unique_ptr<BufferProvider> MakeShellBuffers(npa_shell* sh);

// TEST ONLY: stand in for the VFIO device behind an offered fd. The factory
// gets the offered fd (still owned by the shell) and the offer; return null
// to use the real fd. Process-wide; pass nullptr to reset.
using VfDeviceIoFactory =
    std::function<std::unique_ptr<VfioDeviceIo>(int fd, const control::VfOffer& offer)>;
void SetVfDeviceIoFactoryForTest(VfDeviceIoFactory f);

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_VF_SWITCH_H_
