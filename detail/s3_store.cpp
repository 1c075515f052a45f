// s3_store (object/s3.hpp): S3 requests over libcurl's multi interface.
//
// Each of the store's threads (a `worker`) owns one curl multi handle and the requests handed
// to it. A call builds an `s3_request` on the caller's stack, submits it to worker
// (shard index % threads) and waits on its remote_completion; the worker starts it when the
// caller's shard has fewer than max_concurrency requests in flight, drives it, retries it after
// a backoff when the failure is transient, and signals the completion with the final status.
// Signatures are curl's (CURLOPT_AWS_SIGV4) over a query string we give already encoded and
// sorted, as SigV4 needs and curl 7.88 does not do itself.
#include <eloqstore/object/s3.hpp>

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <eloqstore/options.hpp>
#include <eloqstore/sched/remote.hpp>

namespace eloqstore {

namespace {

using clock_type = std::chrono::steady_clock;

enum class http_method : std::uint8_t { get, put, remove, list, create_bucket };

[[nodiscard]] const char* method_name(http_method m) {
  switch (m) {
    case http_method::get:
    case http_method::list:
      return "GET";
    case http_method::put:
    case http_method::create_bucket:
      return "PUT";
    case http_method::remove:
      return "DELETE";
  }
  return "?";
}

// One call, from submission to its final status (retries included).
struct s3_request {
  http_method method = http_method::get;
  std::string key;  // for reports
  std::string url;
  std::string condition;          // an If-None-Match / If-Match header line, or empty
  std::string_view upload;        // put body
  std::size_t upload_pos = 0;     // bytes of it sent in this attempt
  std::string* body = nullptr;    // where the response body goes (caller's for get)
  std::string etag;               // the response's ETag header
  std::uint64_t modified_ms = 0;  // its Last-Modified header
  long http = 0;                  // the last attempt's status (0: none)
  CURLcode transport = CURLE_OK;  // the last attempt's transport result
  char transport_error[CURL_ERROR_SIZE] = {};
  unsigned attempts = 0;
  object_status status = object_status::failed;
  clock_type::time_point not_before{};  // a retry waits until then
  const void* owner = nullptr;          // the calling shard's port (or thread)
  remote_completion* done = nullptr;
};

// Unreserved characters stay, everything else is %XX (RFC 3986, as SigV4 wants); '/' stays
// in object paths.
void append_encoded(std::string& out, std::string_view s, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
}

// The text between <tag> and </tag> in xml[from, limit), or npos; `from` moves past it.
[[nodiscard]] std::string_view xml_element(std::string_view xml, std::string_view tag,
                                           std::size_t& from, std::size_t limit) {
  std::string open = "<";
  open.append(tag).push_back('>');
  std::string close = "</";
  close.append(tag).push_back('>');
  const std::size_t a = xml.find(open, from);
  if (a == std::string_view::npos || a >= limit) {
    from = std::string_view::npos;
    return {};
  }
  const std::size_t b = xml.find(close, a + open.size());
  if (b == std::string_view::npos || b > limit) {
    from = std::string_view::npos;
    return {};
  }
  from = b + close.size();
  return xml.substr(a + open.size(), b - a - open.size());
}

[[nodiscard]] std::string_view xml_child(std::string_view xml, std::string_view tag) {
  std::size_t from = 0;
  return xml_element(xml, tag, from, xml.size());
}

// XML character data with its entities decoded (&amp; &lt; &gt; &quot; &apos; &#N; &#xN;).
[[nodiscard]] std::string xml_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const std::size_t end = s.find(';', i);
    if (end == std::string_view::npos) {
      out.push_back(s[i]);
      continue;
    }
    const std::string_view ent = s.substr(i + 1, end - i - 1);
    unsigned long code = 0;
    if (ent == "amp") {
      code = '&';
    } else if (ent == "lt") {
      code = '<';
    } else if (ent == "gt") {
      code = '>';
    } else if (ent == "quot") {
      code = '"';
    } else if (ent == "apos") {
      code = '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      const bool hex = ent[1] == 'x' || ent[1] == 'X';
      const std::string digits(ent.substr(hex ? 2 : 1));
      char* stop = nullptr;
      code = std::strtoul(digits.c_str(), &stop, hex ? 16 : 10);
      if (digits.empty() || *stop != '\0') {
        code = 0;
      }
    }
    if (code == 0 || code > 0x10FFFF) {
      out.push_back(s[i]);  // not an entity we know: kept as it is
      continue;
    }
    // UTF-8 of the code point.
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
    i = end;
  }
  return out;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
[[nodiscard]] std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// "2026-12-06T21:00:00.123Z" as milliseconds since the epoch; 0 if it does not parse.
[[nodiscard]] std::uint64_t parse_iso8601_ms(std::string_view s) {
  int y = 0;
  unsigned mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  const std::string text(s);
  int used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2u-%2uT%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &sec, &used) !=
          6 ||
      mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
    return 0;
  }
  std::uint64_t ms = 0;
  if (static_cast<std::size_t>(used) < text.size() && text[used] == '.') {
    unsigned scale = 100;
    for (std::size_t i = used + 1; i < text.size() && std::isdigit(text[i]) != 0; ++i) {
      ms += static_cast<unsigned>(text[i] - '0') * scale;
      scale /= 10;
    }
  }
  const std::int64_t days = days_from_civil(y, mo, d);
  if (days < 0) {
    return 0;
  }
  return (static_cast<std::uint64_t>(days) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms;
}

[[nodiscard]] bool retryable_transport(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// The status of one finished attempt.
[[nodiscard]] object_status classify(const s3_request& r) {
  if (r.transport != CURLE_OK) {
    return retryable_transport(r.transport) ? object_status::transient : object_status::failed;
  }
  const long h = r.http;
  if (h >= 200 && h < 300) {
    return object_status::ok;
  }
  switch (h) {
    case 404:
      // Deleting what is not there succeeds (S3 answers 204 itself; some servers say 404).
      return r.method == http_method::remove ? object_status::ok : object_status::not_found;
    case 409:
      // BucketAlreadyOwnedByYou / a conflicting concurrent write.
      return r.method == http_method::create_bucket ? object_status::ok
                                                    : object_status::precondition_failed;
    case 412:
      return object_status::precondition_failed;
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return object_status::transient;
    case 401:
    case 403:
      return object_status::denied;
    default:
      return object_status::failed;
  }
}

// ---- one HTTP thread ------------------------------------------------------------------------

class worker {
 public:
  using finish_fn = std::function<void(s3_request&)>;

  worker(const s3_config& cfg, finish_fn finish) : cfg_(cfg), finish_(std::move(finish)) {
    multi_ = curl_multi_init();
    if (multi_ != nullptr) {
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 200L);
      thread_ = std::thread([this] { run(); });
    }
  }
  ~worker() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    if (multi_ != nullptr) {
      curl_multi_wakeup(multi_);
    }
    if (thread_.joinable()) {
      thread_.join();
    }
    for (CURL* e : idle_) {
      curl_easy_cleanup(e);
    }
    if (multi_ != nullptr) {
      curl_multi_cleanup(multi_);
    }
  }
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  [[nodiscard]] bool ok() const { return multi_ != nullptr; }

  // Any thread. False after stop (the request was not taken).
  bool submit(s3_request& r) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        return false;
      }
      incoming_.push_back(&r);
    }
    curl_multi_wakeup(multi_);
    return true;
  }

 private:
  struct transfer {
    s3_request* req = nullptr;
    curl_slist* headers = nullptr;
  };

  void run() {
    for (;;) {
      bool stopping = false;
      {
        std::lock_guard lock(mu_);
        stopping = stopping_;
        for (s3_request* r : incoming_) {
          waiting_.push_back(r);
        }
        incoming_.clear();
      }
      if (stopping) {
        abandon_all();
        return;
      }
      const auto now = clock_type::now();
      for (auto it = delayed_.begin(); it != delayed_.end();) {
        if ((*it)->not_before <= now) {
          waiting_.push_back(*it);
          it = delayed_.erase(it);
        } else {
          ++it;
        }
      }
      start_eligible();
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) {
          complete(msg->easy_handle, msg->data.result);
        }
      }
      // Sleep until a socket is ready, a request comes (curl_multi_wakeup) or a retry is due.
      long wait_ms = 1000;
      for (const s3_request* r : delayed_) {
        const auto due = std::chrono::duration_cast<std::chrono::milliseconds>(r->not_before - now);
        wait_ms = std::clamp<long>(static_cast<long>(due.count()), 0, wait_ms);
      }
      if (!waiting_.empty() && active_.size() < max_active()) {
        wait_ms = 0;
      }
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait_ms), nullptr);
    }
  }

  [[nodiscard]] std::size_t max_active() const {
    return std::max<std::size_t>(1, cfg_.max_concurrency) * 64;
  }

  void start_eligible() {
    const std::size_t cap = std::max<std::size_t>(1, cfg_.max_concurrency);
    for (auto it = waiting_.begin(); it != waiting_.end() && active_.size() < max_active();) {
      s3_request& r = **it;
      std::size_t& mine = in_flight_[r.owner];
      if (mine >= cap) {
        ++it;  // its shard is at its limit; later requests of other shards may go
        continue;
      }
      it = waiting_.erase(it);
      if (!start(r)) {
        r.transport = CURLE_OUT_OF_MEMORY;
        r.status = object_status::failed;
        finish_(r);
        continue;
      }
      ++mine;
    }
  }

  bool start(s3_request& r) {
    CURL* e = nullptr;
    if (idle_.empty()) {
      e = curl_easy_init();
      if (e == nullptr) {
        return false;
      }
    } else {
      e = idle_.back();
      idle_.pop_back();
      curl_easy_reset(e);
    }
    ++r.attempts;
    r.http = 0;
    r.transport = CURLE_OK;
    r.transport_error[0] = '\0';
    r.upload_pos = 0;
    r.etag.clear();
    r.modified_ms = 0;
    if (r.body != nullptr) {
      r.body->clear();
    }
    transfer t;
    t.req = &r;
    // (No "Expect:" to suppress 100-continue: curl 7.88 signs the empty header, then drops
    // it, and the server finds the signature wrong.)
    t.headers = curl_slist_append(t.headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (!r.condition.empty()) {
      t.headers = curl_slist_append(t.headers, r.condition.c_str());
    }
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // never the environment's proxies
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(cfg_.request_timeout.count()));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(cfg_.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, cfg_.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, cfg_.verify_tls ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(e, CURLOPT_USERNAME, cfg_.access_key.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, cfg_.secret_key.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.transport_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    switch (r.method) {
      case http_method::get:
      case http_method::list:
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        break;
      case http_method::put:
      case http_method::create_bucket:
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, &on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, &r);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(r.upload.size()));
        break;
      case http_method::remove:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
      curl_slist_free_all(t.headers);
      idle_.push_back(e);
      return false;
    }
    active_.emplace(e, t);
    return true;
  }

  void complete(CURL* e, CURLcode result) {
    const auto it = active_.find(e);
    transfer t = it->second;
    active_.erase(it);
    curl_multi_remove_handle(multi_, e);
    s3_request& r = *t.req;
    r.transport = result;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.http);
    curl_slist_free_all(t.headers);
    idle_.push_back(e);
    --in_flight_[r.owner];
    r.status = classify(r);
    if (r.status == object_status::transient && r.attempts <= cfg_.max_retries) {
      // initial, doubling, up to the cap
      auto wait = cfg_.backoff_initial;
      for (unsigned i = 1; i < r.attempts && wait < cfg_.backoff_max; ++i) {
        wait *= 2;
      }
      r.not_before = clock_type::now() + std::min(wait, cfg_.backoff_max);
      delayed_.push_back(&r);
      return;
    }
    finish_(r);
  }

  // Stopping: whatever is not finished fails.
  void abandon_all() {
    for (auto& [e, t] : active_) {
      curl_multi_remove_handle(multi_, e);
      curl_slist_free_all(t.headers);
      idle_.push_back(e);
      t.req->status = object_status::failed;
      finish_(*t.req);
    }
    active_.clear();
    for (s3_request* r : waiting_) {
      r->status = object_status::failed;
      finish_(*r);
    }
    waiting_.clear();
    for (s3_request* r : delayed_) {
      r->status = object_status::failed;
      finish_(*r);
    }
    delayed_.clear();
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* arg) {
    auto& r = *static_cast<s3_request*>(arg);
    const std::string_view line(data, size * n);
    if (line.size() > 5 && strncasecmp(line.data(), "etag:", 5) == 0) {
      std::string_view v = line.substr(5);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
        v.remove_suffix(1);
      }
      r.etag.assign(v);
    } else if (line.size() > 14 && strncasecmp(line.data(), "last-modified:", 14) == 0) {
      const std::string v(line.substr(14));
      const time_t t = curl_getdate(v.c_str(), nullptr);
      r.modified_ms = t > 0 ? static_cast<std::uint64_t>(t) * 1000 : 0;
    }
    return size * n;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* arg) {
    auto& r = *static_cast<s3_request*>(arg);
    if (r.body != nullptr) {
      try {
        r.body->append(data, size * n);
      } catch (const std::bad_alloc&) {
        return 0;  // curl fails the transfer (CURLE_WRITE_ERROR)
      }
    }
    return size * n;
  }

  static std::size_t on_read(char* out, std::size_t size, std::size_t n, void* arg) {
    auto& r = *static_cast<s3_request*>(arg);
    const std::size_t take = std::min(size * n, r.upload.size() - r.upload_pos);
    std::memcpy(out, r.upload.data() + r.upload_pos, take);
    r.upload_pos += take;
    return take;
  }

  const s3_config& cfg_;
  finish_fn finish_;
  std::string sigv4_ = "aws:amz:" + cfg_.region + ":s3";
  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::deque<s3_request*> incoming_;  // under mu_
  bool stopping_ = false;             // under mu_
  // The worker thread's own.
  std::deque<s3_request*> waiting_;
  std::vector<s3_request*> delayed_;
  std::unordered_map<CURL*, transfer> active_;
  std::unordered_map<const void*, std::size_t> in_flight_;
  std::vector<CURL*> idle_;
};

void global_curl_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

// ---- s3_config ------------------------------------------------------------------------------

s3_config s3_config::from(const options& o) {
  s3_config c;
  const bool gcs = o.cloud_provider == "gcs" || o.cloud_provider == "google" ||
                   o.cloud_provider == "google-cloud";
  c.endpoint = o.cloud_endpoint;
  c.verify_tls = o.cloud_verify_ssl;
  if (c.endpoint.empty()) {
    c.endpoint = gcs ? "https://storage.googleapis.com" : "http://127.0.0.1:9900";
    c.verify_tls = gcs;
  }
  c.region = o.cloud_region;
  if (gcs && c.region == "us-east-1") {
    c.region = "auto";
  }
  c.bucket = o.cloud_store_path.substr(0, o.cloud_store_path.find('/'));
  c.access_key = o.cloud_access_key;
  c.secret_key = o.cloud_secret_key;
  c.request_threads = o.cloud_request_threads;
  c.max_concurrency = o.max_cloud_concurrency;
  return c;
}

// ---- s3_store -------------------------------------------------------------------------------

struct s3_store::impl {
  explicit impl(s3_config c) : cfg(std::move(c)) {}

  s3_config cfg;
  std::string base;  // endpoint/bucket
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<std::uint64_t> gets{0}, puts{0}, removes{0}, lists{0}, attempts{0}, retries{0},
      failures{0}, bytes_up{0}, bytes_down{0};
  mutable std::mutex failure_mu;
  std::string failure;  // under failure_mu

  // Worker threads: the request's final status is in; account for it and wake its caller.
  void finished(s3_request& r) {
    attempts.fetch_add(r.attempts, std::memory_order_relaxed);
    if (r.attempts > 1) {
      retries.fetch_add(r.attempts - 1, std::memory_order_relaxed);
    }
    if (r.status == object_status::ok) {
      if (r.method == http_method::put) {
        bytes_up.fetch_add(r.upload.size(), std::memory_order_relaxed);
      } else if (r.body != nullptr) {
        bytes_down.fetch_add(r.body->size(), std::memory_order_relaxed);
      }
    } else if (r.status != object_status::not_found) {
      failures.fetch_add(1, std::memory_order_relaxed);
      note_failure(r);
    }
    r.done->signal();
  }

  void note_failure(const s3_request& r) {
    std::string msg = method_name(r.method);
    msg.append(" ").append(r.key.empty() ? "(bucket)" : r.key).append(": ");
    if (r.transport != CURLE_OK) {
      msg.append(curl_easy_strerror(r.transport));
      if (r.transport_error[0] != '\0') {
        msg.append(" (").append(r.transport_error).append(")");
      }
    } else if (r.http != 0) {
      msg.append("HTTP ").append(std::to_string(r.http));
      if (r.body != nullptr && r.method != http_method::get) {
        const std::string_view code = xml_child(*r.body, "Code");
        const std::string_view text = xml_child(*r.body, "Message");
        if (!code.empty()) {
          msg.append(" ").append(xml_text(code));
        }
        if (!text.empty()) {
          msg.append(": ").append(xml_text(text));
        }
      }
    } else {
      msg.append("store stopped");
    }
    msg.append(" after ").append(std::to_string(r.attempts)).append(" attempt(s)");
    std::lock_guard lock(failure_mu);
    failure = std::move(msg);
  }

  // A request for object `key`, its response body going to `body`.
  void prepare(s3_request& r, http_method m, std::string_view key, std::string* body) const {
    r.method = m;
    r.key.assign(key);
    r.url = object_url(key);
    r.body = body;
  }

  [[nodiscard]] std::string object_url(std::string_view key) const {
    std::string url = base;
    url.push_back('/');
    append_encoded(url, key, true);
    return url;
  }

  // Hands `r` to its worker and waits for its final status.
  object_status run(s3_request& r) {
    last_call_retries() = 0;
    if (workers.empty()) {
      return object_status::failed;  // not started, or stopped
    }
    remote_completion done;
    r.done = &done;
    static thread_local const char thread_owner = 0;
    std::size_t index = 0;
    if (done.port() != nullptr) {
      r.owner = done.port();
      index = done.port()->index();
    } else {
      r.owner = &thread_owner;
      index = std::hash<std::thread::id>{}(std::this_thread::get_id());
    }
    if (!workers[index % workers.size()]->submit(r)) {
      return object_status::failed;
    }
    done.wait();
    last_call_retries() = r.attempts > 1 ? r.attempts - 1 : 0;
    return r.status;
  }

  static std::uint64_t& last_call_retries() noexcept {
    static thread_local std::uint64_t n = 0;
    return n;
  }
};

std::uint64_t s3_store::retries_of_last_call() noexcept {
  return impl::last_call_retries();
}

s3_store::s3_store(s3_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

s3_store::~s3_store() {
  stop();
}

error s3_store::start() {
  impl& s = *impl_;
  const s3_config& c = s.cfg;
  const bool scheme = c.endpoint.rfind("http://", 0) == 0 || c.endpoint.rfind("https://", 0) == 0;
  if (!scheme || c.bucket.empty() || c.request_threads == 0 || c.max_concurrency == 0 ||
      c.bucket.find('/') != std::string::npos) {
    return error::invalid_args;
  }
  stop();
  global_curl_init();
  s.base = c.endpoint;
  while (s.base.back() == '/') {
    s.base.pop_back();
  }
  s.base.push_back('/');
  append_encoded(s.base, c.bucket, false);
  for (std::size_t i = 0; i < c.request_threads; ++i) {
    s.workers.push_back(std::make_unique<worker>(s.cfg, [&s](s3_request& r) { s.finished(r); }));
    if (!s.workers.back()->ok()) {
      s.workers.clear();
      return error::out_of_mem;
    }
  }
  if (!c.create_bucket) {
    return error::ok;
  }
  s3_request r;
  std::string response;
  r.method = http_method::create_bucket;
  r.url = s.base;
  r.body = &response;
  const object_status st = s.run(r);
  if (st != object_status::ok) {
    s.workers.clear();
    return st == object_status::transient ? error::timeout : error::cloud_error;
  }
  return error::ok;
}

void s3_store::stop() {
  impl_->workers.clear();
}

object_status s3_store::get(std::string_view key, std::string& body, object_meta& meta) {
  impl::last_call_retries() = 0;  // (also when it returns before any request)
  impl& s = *impl_;
  s.gets.fetch_add(1, std::memory_order_relaxed);
  s3_request r;
  s.prepare(r, http_method::get, key, &body);
  const object_status st = s.run(r);
  if (st == object_status::ok) {
    meta.key.assign(key);
    meta.size = body.size();
    meta.etag = std::move(r.etag);
    meta.modified_ms = r.modified_ms;
  } else {
    body.clear();
  }
  return st;
}

object_status s3_store::put(std::string_view key, std::string_view body, const put_condition& cond,
                            object_meta& meta) {
  impl::last_call_retries() = 0;  // (also when it returns before any request)
  impl& s = *impl_;
  s.puts.fetch_add(1, std::memory_order_relaxed);
  if (key.empty()) {
    return object_status::failed;
  }
  s3_request r;
  std::string response;
  s.prepare(r, http_method::put, key, &response);
  r.upload = body;
  switch (cond.what) {
    case put_condition::kind::none:
      break;
    case put_condition::kind::if_absent:
      r.condition = "If-None-Match: *";
      break;
    case put_condition::kind::if_match: {
      std::string_view tag = cond.etag;
      if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') {
        tag = tag.substr(1, tag.size() - 2);
      }
      r.condition = "If-Match: ";
      r.condition.append(tag);
      break;
    }
  }
  const object_status st = s.run(r);
  if (st == object_status::ok) {
    meta.key.assign(key);
    meta.size = body.size();
    meta.etag = std::move(r.etag);
    meta.modified_ms = r.modified_ms;
  }
  return st;
}

object_status s3_store::remove(std::string_view key) {
  impl::last_call_retries() = 0;  // (also when it returns before any request)
  impl& s = *impl_;
  s.removes.fetch_add(1, std::memory_order_relaxed);
  if (key.empty()) {
    return object_status::failed;
  }
  s3_request r;
  std::string response;
  s.prepare(r, http_method::remove, key, &response);
  return s.run(r);
}

object_status s3_store::list(std::string_view prefix, std::string_view delimiter,
                             std::string_view after, std::size_t max_keys, list_page& page) {
  impl::last_call_retries() = 0;  // (also when it returns before any request)
  impl& s = *impl_;
  s.lists.fetch_add(1, std::memory_order_relaxed);
  page.clear();
  if (max_keys == 0 || max_keys > list_page_max) {
    return object_status::failed;
  }
  s3_request r;
  std::string response;
  r.method = http_method::list;
  r.key.assign(prefix);
  r.body = &response;
  // Parameters sorted by name, values encoded: SigV4's canonical query string.
  r.url = s.base;
  r.url.push_back('?');
  if (!after.empty()) {
    r.url.append("continuation-token=");
    append_encoded(r.url, after, false);
    r.url.push_back('&');
  }
  if (!delimiter.empty()) {
    r.url.append("delimiter=");
    append_encoded(r.url, delimiter, false);
    r.url.push_back('&');
  }
  r.url.append("list-type=2&max-keys=").append(std::to_string(max_keys));
  r.url.append("&prefix=");
  append_encoded(r.url, prefix, false);
  const object_status st = s.run(r);
  if (st != object_status::ok) {
    return st;
  }
  const std::string_view xml = response;
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return object_status::failed;
  }
  try {
    for (std::size_t at = 0;;) {
      const std::string_view item = xml_element(xml, "Contents", at, xml.size());
      if (at == std::string_view::npos) {
        break;
      }
      object_meta m;
      m.key = xml_text(xml_child(item, "Key"));
      const std::string size(xml_child(item, "Size"));
      m.size = size.empty() ? 0 : std::strtoull(size.c_str(), nullptr, 10);
      m.etag = xml_text(xml_child(item, "ETag"));
      m.modified_ms = parse_iso8601_ms(xml_child(item, "LastModified"));
      page.objects.push_back(std::move(m));
    }
    for (std::size_t at = 0;;) {
      const std::string_view item = xml_element(xml, "CommonPrefixes", at, xml.size());
      if (at == std::string_view::npos) {
        break;
      }
      page.prefixes.push_back(xml_text(xml_child(item, "Prefix")));
    }
    if (xml_child(xml, "IsTruncated") == "true") {
      page.next = xml_text(xml_child(xml, "NextContinuationToken"));
      if (page.next.empty()) {
        page.clear();
        return object_status::failed;  // truncated, but with no way to go on
      }
    }
  } catch (const std::bad_alloc&) {
    page.clear();
    return object_status::failed;
  }
  return object_status::ok;
}

s3_stats s3_store::stats() const {
  const impl& s = *impl_;
  s3_stats out;
  out.gets = s.gets.load(std::memory_order_relaxed);
  out.puts = s.puts.load(std::memory_order_relaxed);
  out.removes = s.removes.load(std::memory_order_relaxed);
  out.lists = s.lists.load(std::memory_order_relaxed);
  out.attempts = s.attempts.load(std::memory_order_relaxed);
  out.retries = s.retries.load(std::memory_order_relaxed);
  out.failures = s.failures.load(std::memory_order_relaxed);
  out.bytes_up = s.bytes_up.load(std::memory_order_relaxed);
  out.bytes_down = s.bytes_down.load(std::memory_order_relaxed);
  return out;
}

std::string s3_store::last_failure() const {
  std::lock_guard lock(impl_->failure_mu);
  return impl_->failure;
}

}  // namespace eloqstore
