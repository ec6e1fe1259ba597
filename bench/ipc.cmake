# scripts/bench.sh ipc: control-channel round trips against raw socket and futex ping-pong, and
# tensor hand-over against one memcpy, between two real processes.
add_executable(bench_ipc ${CMAKE_CURRENT_SOURCE_DIR}/ipc_bench.cc)
target_link_libraries(bench_ipc PRIVATE pio_ipc benchmark::benchmark)
pio_target_defaults(bench_ipc)
add_executable(bench_ipc_peer ${CMAKE_CURRENT_SOURCE_DIR}/ipc_bench_peer.cc)
target_link_libraries(bench_ipc_peer PRIVATE pio_ipc)
pio_target_defaults(bench_ipc_peer)
add_dependencies(bench_ipc bench_ipc_peer)
