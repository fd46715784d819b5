#include "runtime/core/descriptor_limit.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace cmesh {

result<uint64_t> ensure_descriptor_limit(uint64_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return error{errc::io_error, std::string("getrlimit: ") + std::strerror(errno)};
  if (limit.rlim_cur >= needed) return static_cast<uint64_t>(limit.rlim_cur);
  rlimit wanted = limit;
  wanted.rlim_cur = needed;
  if (wanted.rlim_max < needed) wanted.rlim_max = needed;  // needs CAP_SYS_RESOURCE (root)
  if (setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
    wanted.rlim_max = limit.rlim_max;
    wanted.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &wanted);
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < needed)
      return error{errc::unavailable,
                   "this run needs " + std::to_string(needed) + " open files but the limit is " +
                       std::to_string(limit.rlim_cur) + " (raise it with 'ulimit -n " +
                       std::to_string(needed) + "' or run with --no-storage)"};
  }
  getrlimit(RLIMIT_NOFILE, &limit);
  return static_cast<uint64_t>(limit.rlim_cur);
}

}  // namespace cmesh
