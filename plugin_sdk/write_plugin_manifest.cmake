# Writes the built copy of a plugin's manifest next to its library, with the library's sha256
# (which the source manifest cannot know). Run after every link by pio_add_plugin:
#   cmake -DSOURCE=<plugin_manifest.json> -DLIBRARY=<built .so> -DOUTPUT=<built manifest>
#         -DABI_VERSION=<PIO_PLUGIN_ABI_VERSION> -P write_plugin_manifest.cmake
# Fails the build when the manifest names another library file or another ABI version than the
# one the plugin was compiled against, so a stale manifest never ships.
foreach(var SOURCE LIBRARY OUTPUT ABI_VERSION)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "write_plugin_manifest.cmake: -D${var}=... is required")
  endif()
endforeach()

file(READ "${SOURCE}" manifest)
string(JSON named_library ERROR_VARIABLE json_error GET "${manifest}" library)
if(json_error)
  message(FATAL_ERROR "${SOURCE}: field \"library\": ${json_error}")
endif()
get_filename_component(built_library "${LIBRARY}" NAME)
if(NOT named_library STREQUAL built_library)
  message(FATAL_ERROR "${SOURCE}: field \"library\" is \"${named_library}\" but the build makes "
                      "\"${built_library}\"")
endif()
string(JSON abi ERROR_VARIABLE json_error GET "${manifest}" abi_version)
if(json_error OR NOT abi STREQUAL ABI_VERSION)
  message(FATAL_ERROR "${SOURCE}: field \"abi_version\" is \"${abi}\" but the plugin is built "
                      "against plugin ABI version ${ABI_VERSION}")
endif()

file(SHA256 "${LIBRARY}" digest)
string(JSON manifest SET "${manifest}" sha256 "\"${digest}\"")
file(WRITE "${OUTPUT}.tmp" "${manifest}\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
