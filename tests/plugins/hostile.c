/* Hostile plug-ins for the loader's discovery (tests/plugins/plugin_trust_test.cc):
 * each one misbehaves while the shell reads its tables, in exactly one way
 * chosen by CMakeLists.txt, and must cost the shell nothing but itself.
 *   HOSTILE_CRASH  the entry point writes through a NULL pointer (SIGSEGV)
 *   HOSTILE_HANG   the entry point never returns
 *   HOSTILE_LIE    the info claims an ID table at an unmapped address
 *   HOSTILE_CTOR   a constructor aborts while the object is mapped
 *   HOSTILE_EXIT   the entry point exits the process with status 3
 * Otherwise the object is valid, with IDs that would match the device the
 * test looks for, so a shell that trusted it would pick it. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "npa/plugin.h"
#include "stub_ops.h"

#ifdef HOSTILE_CTOR
__attribute__((constructor)) static void hostile_ctor(void) { abort(); }
#endif

/* The test_good loopback's identity: the hostile ones claim it too. */
__attribute__((unused)) static const npa_pci_id ids[] = {
    {0x1d0f, 0x100f, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
};

static const npa_plugin_ctrl_ops ctrl = {
    .struct_size = sizeof(npa_plugin_ctrl_ops),
    STUB_CTRL_OPS,
};

static const npa_plugin_fast_ops fast = {
    .struct_size = sizeof(npa_plugin_fast_ops),
    STUB_FAST_OPS,
};

static const npa_plugin_info info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = PLUGIN_NAME,
    .vendor = "npa tests",
    .version = "1.0",
#ifdef HOSTILE_LIE
    /* A lie the loader can only find out by reading: page 1 is never mapped. */
    .id_table = (const npa_pci_id *)(unsigned long)0x1000,
    .id_count = 64,
#else
    .id_table = ids,
    .id_count = 1,
#endif
    .id_entry_size = sizeof(npa_pci_id),
    .capabilities = NPA_CAP_TX_CSUM,
    .ctrl = &ctrl,
    .fast = &fast,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *NPA_PLUGIN_ENTRY(const npa_plugin_query *q) {
  (void)q;
#ifdef HOSTILE_CRASH
  {
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
  }
#endif
#ifdef HOSTILE_HANG
  for (;;) pause();
#endif
#ifdef HOSTILE_EXIT
  exit(3);
#endif
  return &info;
}
