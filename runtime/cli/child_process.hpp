// Starting this binary again as a child process with its output on a pipe (cmesh up, benchmarks).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cmesh::cli {

struct child_process {
  pid_t pid = -1;
  int output_fd = -1;  // read end: the child's stdout (and stderr, if merged)
};

// Runs /proc/self/exe with argv[0] = "cmesh" followed by `args`. `merge_stderr` also sends the
// child's stderr to the pipe. The child starts with an empty signal mask (the parent may block
// SIGINT/SIGTERM for sigwait) and, if `own_process_group`, in its own process group so a
// terminal's Ctrl-C reaches only the parent, which then stops the children in order.
// Returns false if the process could not be started.
bool spawn_self(const std::vector<std::string>& args, bool merge_stderr, bool own_process_group,
                child_process& out);

// Runs `program` (a path; "/proc/self/exe" for this binary, with argv[0] = "cmesh") with `args`,
// stdout and stderr appended to `log_path`, stdin from /dev/null, in its own process group.
// Returns the pid, or -1 if it could not be started.
pid_t spawn_logged(const std::string& program, const std::vector<std::string>& args,
                   const std::string& log_path);

}  // namespace cmesh::cli
