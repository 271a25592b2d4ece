// A process-wide pool of worker threads for data-parallel loops, so that a call does not pay for
// starting threads. The calling thread always takes part and never waits for a worker to start:
// a loop completes even when every worker is busy elsewhere (or absent, as after fork()).
#pragma once
#include <cstddef>
#include <functional>

namespace cairn {

// Hardware threads of this machine (at least 1), detected once.
unsigned hardware_threads();

// Runs task(i) for every i in [0, n) on up to `threads` threads, the caller's included, and
// returns when all are done. Tasks must not throw.
void parallel_for(std::size_t n, unsigned threads, const std::function<void(std::size_t)>& task);

}  // namespace cairn
