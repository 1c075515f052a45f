// Fuzz target: the option-file parser (load_options_string, set_option) and its writer
// (save_options_string).
//
// Input: the text up to the first NUL byte is an option file; after it, "key=value" pairs
// separated by NUL bytes are set one by one with set_option on the loaded options.
//
// Properties:
// * a refused load or set leaves the options exactly as they were (every option a file can
//   set, compared field by field);
// * options that loaded pass validate(), and the writer's text for them loads back to the
//   same options (a file we write is a file we read);
// * the same text loads the same way twice.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <eloqstore/options.hpp>
#include <eloqstore/options_file.hpp>

#include "fuzz/fuzz_input.hpp"

using namespace eloqstore;

namespace {

// The writer's text for `o`; empty when the writer refuses it.
std::string text_of(const options& o) {
  std::string text;
  return save_options_string(o, text).ok() ? text : std::string();
}

// Every option an option file sets, compared field by field (not through the writer, which
// is under test).
bool same_file_options(const options& a, const options& b) {
#define SAME(f) (a.f == b.f)
  return SAME(num_threads) && SAME(data_page_restart_interval) &&
         SAME(index_page_restart_interval) && SAME(init_page_count) && SAME(skip_verify_checksum) &&
         SAME(buffer_pool_size) && SAME(root_meta_cache_size) && SAME(manifest_limit) &&
         SAME(fd_limit) && SAME(io_queue_size) && SAME(max_inflight_write) &&
         SAME(max_write_batch_pages) && SAME(buf_ring_size) && SAME(coroutine_stack_size) &&
         SAME(num_retained_archives) && SAME(archive_interval_secs) && SAME(max_archive_tasks) &&
         SAME(file_amplify_factor) && SAME(local_space_limit) && SAME(reserve_space_ratio) &&
         SAME(max_upload_batch) && SAME(max_cloud_concurrency) && SAME(cloud_request_threads) &&
         SAME(direct_io_buffer_pool_size) && SAME(allow_reuse_local_caches) &&
         SAME(cloud_provider) && SAME(cloud_endpoint) && SAME(cloud_region) &&
         SAME(cloud_access_key) && SAME(cloud_secret_key) && SAME(cloud_verify_ssl) &&
         SAME(prewarm_cloud_cache) && SAME(prewarm_task_count) && SAME(mapping_arena_size) &&
         SAME(store_path) && SAME(cloud_store_path) && SAME(data_page_size) &&
         SAME(pages_per_file_shift) && SAME(overflow_pointers) && SAME(data_append_mode);
#undef SAME
}

// What the writer writes for `o` loads back to `o`, field by field.
void check_written_reads_back(const options& o) {
  std::string text;
  if (!save_options_string(o, text).ok()) {
    return;  // (a value set_option allows that an option file cannot hold, or invalid options)
  }
  options back;
  FUZZ_CHECK(load_options_string(text, back).ok());
  FUZZ_CHECK(same_file_options(back, o));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = all.find('\0');
  const std::string_view file = all.substr(0, nul);

  options o;
  FUZZ_CHECK(!text_of(o).empty());  // the defaults are writable
  const validation_result r = load_options_string(file, o);
  if (!r.ok()) {
    FUZZ_CHECK(r.code != error::ok && !r.message.empty());
    FUZZ_CHECK(same_file_options(o, options{}));
  } else {
    FUZZ_CHECK(o.validate().ok());
    options twice;
    FUZZ_CHECK(load_options_string(file, twice).ok() && same_file_options(twice, o));
    check_written_reads_back(o);
  }

  std::string_view sets = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
  for (int n = 0; n < 16 && !sets.empty(); ++n) {  // (each set loads the options 3-4 times)
    const std::size_t end = std::min(sets.find('\0'), sets.size());
    const std::string_view pair = sets.substr(0, end);
    sets.remove_prefix(std::min(end + 1, sets.size()));
    const std::size_t eq = std::min(pair.find('='), pair.size());
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = eq < pair.size() ? pair.substr(eq + 1) : std::string_view();
    const options kept = o;
    const validation_result s = set_option(key, value, o);
    if (!s.ok()) {
      FUZZ_CHECK(!s.message.empty());
      FUZZ_CHECK(same_file_options(o, kept));
    } else {
      check_written_reads_back(o);
    }
  }
  return 0;
}
