/* vnet_entry.c — the one exported symbol of npa_plugin_virtio_net.so. */
#include "vnet.h"

static const npa_pci_id vnet_ids[] = {
    /* 4.1.2.1: modern-only virtio-net. Transitional 1af4:1000 is not claimed:
     * its legacy BAR0 interface is not driven here. */
    {VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_NET_MODERN, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},
};

static const npa_plugin_info vnet_info = {
    .struct_size = sizeof(npa_plugin_info),
    .abi_major = NPA_PLUGIN_ABI_MAJOR,
    .abi_minor = NPA_PLUGIN_ABI_MINOR,
    .name = "virtio_net",
    .vendor = "npa",
    .version = "1.0",
    .id_table = vnet_ids,
    .id_count = sizeof(vnet_ids) / sizeof(vnet_ids[0]),
    .id_entry_size = sizeof(npa_pci_id),
    .capabilities = NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM | NPA_CAP_TSO | NPA_CAP_MULTIQUEUE |
                    NPA_CAP_RX_INTR,
    .ctrl = &vnet_ctrl_ops,
    .fast = &vnet_fast_ops,
    /* TX frames go back through dev->free_tx only (vnet_tx_reap,
     * vnet_free_tx_cookie); RX buffers through buf_free. TX_BYTES:
     * st.tx_bytes is a software count, since probe, of each frame
     * vnet_tx_burst took (its chain's bytes, checked equal to pkt_len).
     * RX_BYTES: st.rx_bytes is pkt_len of each frame vnet_rx_burst hands
     * up (a dropped one is counted in rx_dropped only). */
    .flags = NPA_PLUGIN_F_TX_FREE | NPA_PLUGIN_F_TX_BYTES | NPA_PLUGIN_F_RX_BYTES,
};

NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q) {
  if (q == 0 || q->struct_size < sizeof(*q) || q->abi_major != NPA_PLUGIN_ABI_MAJOR) return 0;
  return &vnet_info;
}
