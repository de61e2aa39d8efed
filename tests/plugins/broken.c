/* One deliberately broken plug-in per build: exactly one BROKEN_* macro is
 * defined by CMakeLists.txt and introduces exactly one defect into an
 * otherwise valid plug-in, so the loader test can assert the exact reason. */
#include "npa/plugin.h"
#include "stub_ops.h"

/* BROKEN_NULL_START and BROKEN_NULL_TX override one op of STUB_*_OPS. */
#pragma GCC diagnostic ignored "-Woverride-init"

#ifdef BROKEN_ID_ENTRY_SIZE
#define ID_ENTRY_SIZE 8
#else
#define ID_ENTRY_SIZE sizeof(npa_pci_id)
#endif

/* Unused by BROKEN_NULL_IDS. */
__attribute__((unused)) static const npa_pci_id ids[] = {
    {0x1d0f, 0xbad0, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
};

static const npa_plugin_ctrl_ops ctrl = {
#ifdef BROKEN_CTRL_SIZE
    .struct_size = 64,
#else
    .struct_size = sizeof(npa_plugin_ctrl_ops),
#endif
    STUB_CTRL_OPS,
#ifdef BROKEN_NULL_START
    .start = NULL,
#endif
};

static const npa_plugin_fast_ops fast = {
#ifdef BROKEN_FAST_SIZE
    .struct_size = 16,
#else
    .struct_size = sizeof(npa_plugin_fast_ops),
#endif
    STUB_FAST_OPS,
#ifdef BROKEN_NULL_TX
    .tx_burst = NULL,
#endif
};

static const npa_plugin_info info = {
#ifdef BROKEN_INFO_SIZE
    .struct_size = 40,
#else
    .struct_size = sizeof(npa_plugin_info),
#endif
#ifdef BROKEN_MAJOR
    .abi_major = NPA_PLUGIN_ABI_MAJOR + 1,
#else
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
#endif
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
#if defined(BROKEN_NAME)
    .name = "Bad-Name",
#elif defined(BROKEN_LONG_NAME)
    .name = "a_name_that_is_far_too_long_for_the_shell",
#else
    .name = PLUGIN_NAME,
#endif
    .vendor = "npa tests",
    .version = "1.0",
#ifdef BROKEN_NULL_IDS
    .id_table = NULL,
#else
    .id_table = ids,
#endif
#ifdef BROKEN_ZERO_IDS
    .id_count = 0,
#else
    .id_count = 1,
#endif
    .id_entry_size = ID_ENTRY_SIZE,
#ifdef UNKNOWN_CAPS
    /* Bits a newer minor might define: accepted with a warning. */
    .capabilities = NPA_CAP_TX_CSUM | (1ull << 40) | (1ull << 41),
#else
    .capabilities = NPA_CAP_TX_CSUM,
#endif
    .ctrl = &ctrl,
    .fast = &fast,
};

#ifdef BROKEN_NO_ENTRY
/* A plausible mistake: the wrong name, so npa_plugin_entry is not exported. */
NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry_v1(const npa_plugin_query *q) {
  (void)q;
  return &info;
}
#else
NPA_PLUGIN_EXPORT const npa_plugin_info *NPA_PLUGIN_ENTRY(const npa_plugin_query *q) {
#ifdef BROKEN_ENTRY_NULL
  (void)q;
  (void)&info;
  return NULL; /* refuses every shell */
#else
  /* The check the header recommends; the loader checks again. */
  return q->abi_major == NPA_PLUGIN_ABI_MAJOR ? &info : NULL;
#endif
}
#endif
