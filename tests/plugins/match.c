/* Plug-ins that only differ in name, version and ID table, for the matching
 * and search-path tests. MATCH_TABLE selects the table; PLUGIN_NAME and
 * PLUGIN_VERSION come from CMakeLists.txt. */
#include "npa/plugin.h"
#include "stub_ops.h"

#define ANY NPA_PCI_ANY_ID

#ifdef PLUGIN_NAME_OVERRIDE /* two objects, one plug-in name */
#undef PLUGIN_NAME
#define PLUGIN_NAME PLUGIN_NAME_OVERRIDE
#endif

#if MATCH_TABLE == 1 /* exact: vendor, device and subsystem */
typedef npa_pci_id entry_t;
#define ENTRY(v, d, sv, sd, c, m) {v, d, sv, sd, c, m}
static const entry_t ids[] = {
    ENTRY(0x1af4, 0x1041, ANY, ANY, 0, 0),
    ENTRY(0x8086, 0x10d3, 0x8086, 0xa01f, 0, 0),
};
#elif MATCH_TABLE == 2 /* vendor and device */
typedef npa_pci_id entry_t;
#define ENTRY(v, d, sv, sd, c, m) {v, d, sv, sd, c, m}
static const entry_t ids[] = {ENTRY(0x8086, 0x10d3, ANY, ANY, 0, 0)};
#elif MATCH_TABLE == 3 /* vendor only, laid out with a larger stride than v1 */
typedef struct {
  npa_pci_id id;
  uint64_t future_field; /* what a newer minor might append to each entry */
} entry_t;
#define ENTRY(v, d, sv, sd, c, m) {{v, d, sv, sd, c, m}, 0xdeadbeefdeadbeefull}
static const entry_t ids[] = {
    ENTRY(0x10ec, ANY, ANY, ANY, 0, 0),
    ENTRY(0x8086, ANY, ANY, ANY, 0, 0),
};
#elif MATCH_TABLE == 4 /* any Ethernet controller (class 02/00) */
typedef npa_pci_id entry_t;
#define ENTRY(v, d, sv, sd, c, m) {v, d, sv, sd, c, m}
static const entry_t ids[] = {ENTRY(ANY, ANY, ANY, ANY, 0x020000, 0xffff00)};
#elif MATCH_TABLE == 5 /* the search-path duplicates */
typedef npa_pci_id entry_t;
#define ENTRY(v, d, sv, sd, c, m) {v, d, sv, sd, c, m}
static const entry_t ids[] = {ENTRY(0x1234, 0x5678, ANY, ANY, 0, 0)};
#else
#error "MATCH_TABLE must be 1..5"
#endif

static const npa_plugin_ctrl_ops ctrl = {.struct_size = sizeof(npa_plugin_ctrl_ops), STUB_CTRL_OPS};
static const npa_plugin_fast_ops fast = {.struct_size = sizeof(npa_plugin_fast_ops), STUB_FAST_OPS};

static const npa_plugin_info info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = PLUGIN_NAME,
    .vendor = "npa tests",
    .version = PLUGIN_VERSION,
    .id_table = (const npa_pci_id *)ids,
    .id_count = sizeof(ids) / sizeof(ids[0]),
    .id_entry_size = sizeof(entry_t),
    .capabilities = 0,
    .ctrl = &ctrl,
    .fast = &fast,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *NPA_PLUGIN_ENTRY(const npa_plugin_query *q) {
  return q->abi_major == NPA_PLUGIN_ABI_MAJOR ? &info : NULL;
}
