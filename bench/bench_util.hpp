// Helpers shared by the benchmarks: medians, percentiles, child processes with their peak memory,
// CSV output. Benchmarks live outside actors/ and sim/, so they may read the wall clock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cmesh::bench {

double median(std::vector<double> values);
double percentile(std::vector<double> values, double fraction);  // fraction in [0,1]

struct child_result {
  int exit_code = -1;
  std::string output;
  long peak_rss_kib = 0;  // ru_maxrss of the child
  double wall_seconds = 0;
};
// Runs this binary (/proc/self/exe) with `args`, capturing stdout and stderr (with
// `stderr_to_terminal`, only stdout: the child's stderr, e.g. progress, goes where ours goes).
child_result run_self(const std::vector<std::string>& args, bool stderr_to_terminal = false);

// "key=value" lookup in a summary line set, e.g. find_number(out, "delivered_per_wall_second").
double find_number(const std::string& text, const std::string& key);

// Appends rows to DIR/NAME.csv, writing the header first if the file is new.
void write_csv(const std::string& directory, const std::string& name, const std::string& header,
               const std::vector<std::string>& rows);

std::string format(const char* pattern, ...);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int free_port();

}  // namespace cmesh::bench
