/* A plugin that speaks only a future ABI version: its entry returns NULL for this worker's. */
#include "pio/plugin.h"

const pio_plugin_api* pio_plugin_entry(uint32_t abi_version) {
  (void)abi_version;
  return NULL;
}
