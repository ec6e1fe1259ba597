/* A plugin built against an older, smaller pio_plugin_api (ABI version 0), written in plain C:
 * the worker must refuse it with a message naming both versions, before calling any function. */
#include "pio/plugin.h"

typedef struct old_api {
  uint32_t struct_size;
  uint32_t abi_version;
  const char* name;
  const char* version;
} old_api;

static const old_api kOldApi = {sizeof(old_api), 0, "old_abi", "0.0.1"};

const pio_plugin_api* pio_plugin_entry(uint32_t abi_version) {
  (void)abi_version;
  return (const pio_plugin_api*)&kOldApi;
}
