/* Plug-ins the shell's loader accepts but npa-conform --abi-only must not:
 * each LAX_* macro adds one fault the loader cannot see (abi_checks_test).
 *   LAX_ANY_MAJOR  the entry answers a shell of any ABI major
 *   LAX_WILDCARD   an ID-table entry matches every PCI function
 * With neither, the plug-in passes every check. */
#include "npa/plugin.h"
#include "tests/plugins/stub_ops.h"

static const npa_pci_id ids[] = {
    {0x1d0f, 0x1a50, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
#ifdef LAX_WILDCARD
    {NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
#endif
};
static const npa_plugin_ctrl_ops ctrl = {.struct_size = sizeof(npa_plugin_ctrl_ops), STUB_CTRL_OPS};
static const npa_plugin_fast_ops fast = {.struct_size = sizeof(npa_plugin_fast_ops), STUB_FAST_OPS};
static const npa_plugin_info info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = "lax",
    .vendor = "npa tests",
    .version = "1",
    .id_table = ids,
    .id_count = sizeof(ids) / sizeof(ids[0]),
    .id_entry_size = sizeof(npa_pci_id),
    .ctrl = &ctrl,
    .fast = &fast,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q) {
#ifdef LAX_ANY_MAJOR
  return q != NULL ? &info : NULL;
#else
  return q != NULL && q->struct_size >= sizeof(*q) && q->abi_major == NPA_PLUGIN_ABI_MAJOR ? &info
                                                                                          : NULL;
#endif
}
