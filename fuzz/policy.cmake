# The trust-level policy parser (sandbox/policy.cc) on arbitrary JSON: operator input, but a
# crash there would take the host down at start-up.
pio_add_fuzzer(policy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/policy_fuzzer.cc LIBS pio_sandbox)
