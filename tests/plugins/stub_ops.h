/* Ops for test plug-ins that only exist to be loaded, matched or rejected.
 * The loader tests never call them; they return -ENOTSUP if something does. */
#ifndef NPA_TESTS_PLUGINS_STUB_OPS_H_
#define NPA_TESTS_PLUGINS_STUB_OPS_H_

#include <errno.h>

#include "npa/plugin.h"

static int stub_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out) {
  (void)svc; (void)info; (void)out;
  return -ENOTSUP;
}
static void stub_remove(npa_plugin_dev *dev) { (void)dev; }
static int stub_get_caps(npa_plugin_dev *dev, npa_dev_caps *caps) {
  (void)dev; (void)caps;
  return -ENOTSUP;
}
static int stub_configure(npa_plugin_dev *dev, const npa_dev_config *cfg) {
  (void)dev; (void)cfg;
  return -ENOTSUP;
}
static int stub_dev_op(npa_plugin_dev *dev) {
  (void)dev;
  return -ENOTSUP;
}
static npa_plugin_queue *stub_queue(npa_plugin_dev *dev, uint16_t qid) {
  (void)dev; (void)qid;
  return NULL;
}
static int stub_link(npa_plugin_dev *dev, npa_link_status *out) {
  (void)dev; (void)out;
  return -ENOTSUP;
}
static int stub_stats(npa_plugin_dev *dev, uint16_t qid, npa_plugin_qstats *out) {
  (void)dev; (void)qid; (void)out;
  return -ENOTSUP;
}
static uint16_t stub_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n) {
  (void)q; (void)bufs; (void)n;
  return 0;
}

#define STUB_CTRL_OPS                                                                    \
  .probe = stub_probe, .remove = stub_remove, .get_caps = stub_get_caps,                 \
  .configure = stub_configure, .start = stub_dev_op, .stop = stub_dev_op,                \
  .queue = stub_queue, .link_status = stub_link, .queue_stats = stub_stats

#define STUB_FAST_OPS .rx_burst = stub_burst, .tx_burst = stub_burst

#endif /* NPA_TESTS_PLUGINS_STUB_OPS_H_ */
