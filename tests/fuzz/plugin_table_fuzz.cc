// libFuzzer target: the plug-in loader's table validation
// (shell/vf/plugin_loader.h ValidatePluginInfo), without dlopen.
//
// The input is laid out as a plug-in's answer: the first bytes fill an
// npa_plugin_info (its pointer fields are replaced by pointers into the
// input's own buffers or left NULL, chosen by a flags byte), then the bytes
// for the name, vendor and version strings (each in a heap buffer of 256
// bytes that is NOT NUL-terminated unless the input says so: the validator
// must never read past 256), the control and fast ops tables and the ID
// table (a heap buffer exactly as long as id_count * id_entry_size claims,
// when that is within the loader's bounds, so any read past it is an ASan
// report). Ops are non-NULL garbage pointers the validator may look at but
// never call.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "shell/vf/plugin_loader.h"

using namespace npa::shell;

namespace {

struct Input {
  const uint8_t* p;
  size_t n;
  void Take(void* out, size_t len) {
    size_t k = len < n ? len : n;
    memset(out, 0, len);
    memcpy(out, p, k);
    p += k;
    n -= k;
  }
  uint8_t Byte() {
    uint8_t b = 0;
    Take(&b, 1);
    return b;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const uint8_t flags = in.Byte();
  const uint8_t opt = in.Byte();
  npa_plugin_info raw;
  in.Take(&raw, sizeof raw);

  std::vector<char> name(256), vendor(256), version(256);
  in.Take(name.data(), name.size());
  in.Take(vendor.data(), vendor.size());
  in.Take(version.data(), version.size());
  // A NUL where the input puts it, or none at all.
  if (flags & 0x40) {
    name[in.Byte() % 256] = 0;
    vendor[in.Byte() % 256] = 0;
    version[in.Byte() % 256] = 0;
  }
  // Ops tables: exactly as large as this shell's structs; struct_size from
  // the input (the validator copies min(theirs, ours)).
  std::vector<uint8_t> ctrl(sizeof(npa_plugin_ctrl_ops)), fast(sizeof(npa_plugin_fast_ops));
  in.Take(ctrl.data(), ctrl.size());
  in.Take(fast.data(), fast.size());

  // The ID table: as many bytes as the info claims, if that is sane.
  std::vector<uint8_t> ids;
  const size_t claimed = size_t{raw.id_count} * raw.id_entry_size;
  const bool ids_fit = raw.id_count <= kMaxIdCount && raw.id_entry_size <= kMaxIdEntrySize;
  if (ids_fit) {
    ids.resize(claimed ? claimed : 1);
    in.Take(ids.data(), ids.size());
  }

  raw.name = (flags & 0x01) ? name.data() : nullptr;
  raw.vendor = (flags & 0x02) ? vendor.data() : nullptr;
  raw.version = (flags & 0x04) ? version.data() : nullptr;
  raw.id_table = (flags & 0x08) && ids_fit ? reinterpret_cast<const npa_pci_id*>(ids.data()) : nullptr;
  raw.ctrl = (flags & 0x10) ? reinterpret_cast<const npa_plugin_ctrl_ops*>(ctrl.data()) : nullptr;
  raw.fast = (flags & 0x20) ? reinterpret_cast<const npa_plugin_fast_ops*>(fast.data()) : nullptr;
  // With a table larger than the buffers behind it, the validator would
  // read past them: that is a lie only a child process can survive
  // (plugin_trust_test), not the pure check's contract. Keep the claims
  // within what is behind the pointers.
  if (!ids_fit) raw.id_table = nullptr;

  LoadOptions o;
  o.log = false;
  o.required_minor = opt & 1 ? 1 : 0;
  absl::StatusOr<PluginTables> t = ValidatePluginInfo((flags & 0x80) ? nullptr : &raw, o, "fuzz.so");
  if (t.ok()) {
    // What was accepted must be what the loader promises.
    if (t->name.empty() || t->name.size() > kMaxPluginNameLen) __builtin_trap();
    if (t->ids.empty() || t->ids.size() > kMaxIdCount) __builtin_trap();
    if (t->ctrl.probe == nullptr || t->fast.rx_burst == nullptr || t->fast.tx_burst == nullptr)
      __builtin_trap();
    for (const npa_pci_id& e : t->ids)
      if ((e.class_code | e.class_mask) > 0xffffffu) __builtin_trap();
  }
  return 0;
}
