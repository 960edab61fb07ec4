// udtperf (C++) is examples/udtperf built on the C++ library, libudt
// 4.11: the same flags, control protocol (see examples/udtperf/control.go)
// and output, text and -json, so that either client works with either
// server and the two can be measured side by side (bench/compare.sh).
//
// Build: g++ -O2 -o udtperf-cpp udtperf.cpp -ludt -lpthread
//
//   udtperf-cpp -s [-p port] [-json]
//   udtperf-cpp -c host [-p port] [-t secs] [-P streams] [-mss n] [-msg size] [-json]
//
// The server listens on IPv4 only; the client dials IPv4 or IPv6. Bad
// arguments exit 2, failures exit 1 with "udtperf: <what>" on stderr.
//
// Retransmissions and RTT come from UDT::perfmon (pktRetrans, msRTT). The
// per-second goodput is what the receiver acknowledged: the bytes sent less
// those still in the send buffer (UDT_SNDDATA, in packets), which is exact
// because stream writes are whole packets and a message's packets carry
// equal shares of it but for the last.

#include <udt/udt.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

// ---------------------------------------------------------------- constants

static const char* const kImpl = "cpp";
static const int kDefaultPort = 5201;
static const double kDefaultSecs = 10;
static const int kDefaultMSS = 1500;
static const int kMaxSecs = 86400;
static const int kMaxStreams = 128;
static const int kMinMSS = 76;
static const int kMaxMSS = 65536;
static const int kMaxMessageSize = 8 << 20;

static const int kProtoVersion = 1;
static const int kHelloSize = 12;
static const char kHelloMagic[] = "UPRF";
static const size_t kMaxLine = 4096;

static const double kCtlTimeout = 5;     // connecting and each request-reply step
static const double kAcceptTimeout = 10; // for the server to have all streams
static const double kDrainTimeout = 10;  // for the server to read what was sent, after DONE
static const double kResultTimeout = kDrainTimeout + 10;
static const int kClientLinger = 5; // seconds each stream's close may wait
static const int kPollMs = 100;     // UDT send and receive timeouts, to look at the clock

// ---------------------------------------------------------------- small helpers

static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpuSeconds() {
    rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static std::string format(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < int(sizeof(buf)))
        return std::string(buf, n < 0 ? 0 : n);
    std::string s(n + 1, '\0');
    va_start(ap, fmt);
    vsnprintf(&s[0], s.size(), fmt, ap);
    va_end(ap);
    s.resize(n);
    return s;
}

static std::mutex outMu;

// emit prints a report whole, even with several threads.
static void emit(const std::string& s) {
    std::lock_guard<std::mutex> lock(outMu);
    fwrite(s.data(), 1, s.size(), stdout);
    fflush(stdout);
}

static std::string udtError() { return UDT::getlasterror().getErrorMessage(); }

static double mbps(int64_t bytes, double secs) { return secs > 0 ? double(bytes) * 8 / 1e6 / secs : 0; }

static double perGB(double cpu, int64_t bytes) { return bytes > 0 ? cpu / (double(bytes) / 1e9) : 0; }

static double round3(double x) { return round(x * 1e3) / 1e3; }

static std::string plural(int n, const char* one, const char* many) {
    return format("%d %s", n, n == 1 ? one : many);
}

static const char* modeName(int msg) { return msg > 0 ? "message" : "stream"; }

// ---------------------------------------------------------------- JSON

// Json builds one object, its fields in the order added.
class Json {
public:
    Json& str(const char* k, const std::string& v) { return raw(k, quote(v)); }
    Json& num(const char* k, int64_t v) { return raw(k, format("%lld", (long long)v)); }
    Json& num3(const char* k, double v) { return raw(k, format("%.3f", v)); }
    Json& num6(const char* k, double v) { return raw(k, format("%.6f", v)); }
    Json& numg(const char* k, double v) { return raw(k, format("%g", v)); }
    Json& ints(const char* k, const std::vector<int64_t>& v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); i++)
            s += (i ? "," : "") + format("%lld", (long long)v[i]);
        return raw(k, s + "]");
    }
    Json& floats3(const char* k, const std::vector<double>& v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); i++)
            s += (i ? "," : "") + format("%.3f", v[i]);
        return raw(k, s + "]");
    }
    std::string line() const { return "{" + body_ + "}\n"; }

private:
    Json& raw(const char* k, const std::string& v) {
        if (!body_.empty())
            body_ += ",";
        body_ += quote(k) + ":" + v;
        return *this;
    }
    static std::string quote(const std::string& s) {
        std::string q = "\"";
        for (size_t i = 0; i < s.size(); i++) {
            unsigned char c = s[i];
            if (c == '"' || c == '\\')
                q += '\\', q += char(c);
            else if (c < 0x20)
                q += format("\\u%04x", c);
            else
                q += char(c);
        }
        return q + "\"";
    }
    std::string body_;
};

// ---------------------------------------------------------------- options

struct Options {
    bool server = false;
    bool client = false;
    std::string host;
    int port = kDefaultPort;
    double secs = kDefaultSecs;
    int streams = 1;
    int mss = kDefaultMSS;
    int msg = 0;
    bool json = false;
};

static void usage(const std::string& why) {
    fprintf(stderr, "udtperf: %s\n"
                    "usage: udtperf -s [-p port] [-json]\n"
                    "       udtperf -c host [-p port] [-t secs] [-P streams] [-mss n] [-msg size] [-json]\n",
            why.c_str());
    exit(2);
}

static int64_t parseInt(const std::string& name, const char* s) {
    char* end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno != 0 || *s == '\0' || *end != '\0')
        usage(format("invalid value \"%s\" for flag -%s: parse error", s, name.c_str()));
    return v;
}

static double parseFloat(const std::string& name, const char* s) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *s == '\0' || *end != '\0')
        usage(format("invalid value \"%s\" for flag -%s: parse error", s, name.c_str()));
    return v;
}

static Options parseArgs(int argc, char** argv) {
    Options o;
    std::map<std::string, bool> set;
    int i = 1;
    for (; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--") {
            i++;
            break;
        }
        if (a.size() < 2 || a[0] != '-')
            break;
        std::string name = a.substr(a[1] == '-' ? 2 : 1);
        std::string value;
        bool hasValue = false;
        size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            hasValue = true;
        }
        if (name == "s" || name == "json") {
            bool v = true;
            if (hasValue) {
                if (value == "true" || value == "1")
                    v = true;
                else if (value == "false" || value == "0")
                    v = false;
                else
                    usage(format("invalid boolean value \"%s\" for -%s: parse error", value.c_str(), name.c_str()));
            }
            (name == "s" ? o.server : o.json) = v;
            set[name] = true;
            continue;
        }
        if (name != "c" && name != "p" && name != "t" && name != "P" && name != "mss" && name != "msg")
            usage(format("flag provided but not defined: -%s", name.c_str()));
        if (!hasValue) {
            if (i + 1 >= argc)
                usage(format("flag needs an argument: -%s", name.c_str()));
            value = argv[++i];
        }
        set[name] = true;
        const char* v = value.c_str();
        if (name == "c") {
            o.host = value;
            o.client = true;
        } else if (name == "p") {
            o.port = int(parseInt(name, v));
        } else if (name == "t") {
            o.secs = parseFloat(name, v);
        } else if (name == "P") {
            o.streams = int(parseInt(name, v));
        } else if (name == "mss") {
            o.mss = int(parseInt(name, v));
        } else {
            o.msg = int(parseInt(name, v));
        }
    }
    if (i < argc)
        usage(format("unexpected argument \"%s\"", argv[i]));
    if (o.server && o.client)
        usage("-s and -c cannot be used together");
    if (!o.server && !o.client)
        usage("one of -s (server) or -c host (client) is needed");
    if (o.client && o.host.empty())
        usage("-c needs a host");
    if (o.server) {
        const char* clientFlags[] = {"t", "P", "mss", "msg"};
        for (const char* f : clientFlags)
            if (set[f])
                usage(format("-%s is a client flag; the client sends it to the server", f));
    }
    int minPort = o.server ? 0 : 1;
    if (o.port < minPort || o.port > 65535)
        usage(format("-p %d: port must be %d to 65535", o.port, minPort));
    if (!(o.secs > 0 && o.secs <= kMaxSecs))
        usage(format("-t %g: seconds must be more than 0 and at most %d", o.secs, kMaxSecs));
    if (o.streams < 1 || o.streams > kMaxStreams)
        usage(format("-P %d: streams must be 1 to %d", o.streams, kMaxStreams));
    if (o.mss < kMinMSS || o.mss > kMaxMSS)
        usage(format("-mss %d: MSS must be %d to %d", o.mss, kMinMSS, kMaxMSS));
    if (o.msg < 0 || o.msg > kMaxMessageSize)
        usage(format("-msg %d: message size must be 0 (stream mode) to %d", o.msg, kMaxMessageSize));
    return o;
}

// ---------------------------------------------------------------- control protocol

struct Message {
    std::string verb;
    std::map<std::string, std::string> fields;

    bool has(const char* k) const { return fields.count(k) > 0; }

    // integer returns field k, or sets err if it is missing or outside lo..hi.
    int64_t integer(const char* k, int64_t lo, int64_t hi, std::string* err) const {
        auto it = fields.find(k);
        if (it == fields.end()) {
            *err = verb + " line without " + k;
            return 0;
        }
        char* end;
        errno = 0;
        long long v = strtoll(it->second.c_str(), &end, 10);
        if (errno != 0 || it->second.empty() || *end != '\0' || v < lo || v > hi) {
            *err = format("%s line: %s=%s is not a number from %lld to %lld", verb.c_str(), k, it->second.c_str(),
                          (long long)lo, (long long)hi);
            return 0;
        }
        return v;
    }

    double real(const char* k, std::string* err) const {
        auto it = fields.find(k);
        if (it == fields.end()) {
            *err = verb + " line without " + k;
            return 0;
        }
        char* end;
        errno = 0;
        double v = strtod(it->second.c_str(), &end);
        if (errno != 0 || it->second.empty() || *end != '\0' || !(v >= 0)) {
            *err = format("%s line: %s=%s is not a number of 0 or more", verb.c_str(), k, it->second.c_str());
            return 0;
        }
        return v;
    }

    std::string get(const char* k) const {
        auto it = fields.find(k);
        return it == fields.end() ? "" : it->second;
    }
};

static bool parseMessage(std::string line, Message* m, std::string* err) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
    size_t sp = line.find(' ');
    m->verb = line.substr(0, sp);
    m->fields.clear();
    std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (m->verb.empty()) {
        *err = "empty control line";
        return false;
    }
    if (m->verb == "ERROR") {
        if (rest.compare(0, 7, "reason=") == 0)
            rest = rest.substr(7);
        m->fields["reason"] = rest;
        return true;
    }
    size_t i = 0;
    while (i < rest.size()) {
        while (i < rest.size() && rest[i] == ' ')
            i++;
        if (i >= rest.size())
            break;
        size_t j = rest.find(' ', i);
        std::string w = rest.substr(i, j == std::string::npos ? std::string::npos : j - i);
        i = j == std::string::npos ? rest.size() : j;
        size_t eq = w.find('=');
        if (eq == std::string::npos || eq == 0) {
            *err = "bad control line \"" + line + "\": word \"" + w + "\" is not key=value";
            return false;
        }
        m->fields[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return true;
}

// Control is one end of a control connection, a TCP socket.
class Control {
public:
    explicit Control(int fd) : fd_(fd) {}
    ~Control() { close(fd_); }

    // read reads the next line by deadline (a now() time).
    bool read(double deadline, Message* m, std::string* err) {
        for (;;) {
            size_t nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string line = buf_.substr(0, nl + 1);
                buf_.erase(0, nl + 1);
                return parseMessage(line, m, err);
            }
            if (buf_.size() >= kMaxLine) {
                *err = format("control line longer than %zu bytes", kMaxLine);
                return false;
            }
            double left = deadline - now();
            if (left <= 0) {
                *err = "control connection: timed out";
                return false;
            }
            pollfd p = {fd_, POLLIN, 0};
            int rc = poll(&p, 1, int(left * 1000) + 1);
            if (rc < 0 && errno == EINTR)
                continue;
            if (rc < 0) {
                *err = std::string("control connection: ") + strerror(errno);
                return false;
            }
            if (rc == 0)
                continue;
            char tmp[1024];
            ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
            if (n == 0) {
                *err = "control connection closed by the peer";
                return false;
            }
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                *err = std::string("control connection: ") + strerror(errno);
                return false;
            }
            buf_.append(tmp, n);
        }
    }

    // expect reads a line and fails unless its verb is verb; ERROR's
    // reason becomes the error.
    bool expect(const char* verb, double deadline, Message* m, std::string* err) {
        if (!read(deadline, m, err))
            return false;
        if (m->verb == "ERROR") {
            *err = "server: " + m->get("reason");
            return false;
        }
        if (m->verb != verb) {
            *err = "control: got " + m->verb + ", want " + verb;
            return false;
        }
        return true;
    }

    bool write(const std::string& s) {
        size_t off = 0;
        while (off < s.size()) {
            ssize_t n = send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            off += n;
        }
        return true;
    }

private:
    int fd_;
    std::string buf_; // read, not yet returned
};

static void putU32(char* p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = char(v >> (24 - 8 * i));
}

static uint32_t getU32(const char* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | uint8_t(p[i]);
    return v;
}

static void makeHello(char* b, uint32_t id, int idx) {
    memcpy(b, kHelloMagic, 4);
    putU32(b + 4, id);
    putU32(b + 8, uint32_t(idx));
}

// ---------------------------------------------------------------- UDT helpers

static bool isTimeout(int code) {
    return code == CUDTException::ETIMEOUT || code == CUDTException::EASYNCRCV || code == CUDTException::EASYNCSND;
}

static void setInt(UDTSOCKET s, UDTOpt opt, int v) { UDT::setsockopt(s, 0, opt, &v, sizeof(v)); }

static void setBool(UDTSOCKET s, UDTOpt opt, bool v) { UDT::setsockopt(s, 0, opt, &v, sizeof(v)); }

static std::string peerName(const sockaddr_storage& ss, socklen_t len) {
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<const sockaddr*>(&ss), len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    if (ss.ss_family == AF_INET6)
        return std::string("[") + host + "]:" + port;
    return std::string(host) + ":" + port;
}

// ---------------------------------------------------------------- server

static std::atomic<bool> serverBusy(false);

struct ServerStream {
    UDTSOCKET s = UDT::INVALID_SOCK;
    std::atomic<int64_t> expected{-1}; // bytes the client sent; -1 until its SENT line

    // Owned by the reader until it has finished.
    int64_t bytes = 0, msgs = 0;
    double first = 0, last = 0;
};

struct ServerTest {
    std::vector<std::unique_ptr<ServerStream>> streams;
    std::atomic<bool> abort{false};
    std::mutex mu;
    std::condition_variable cond;
    int finished = 0; // readers done, guarded by mu
};

// readStream counts what arrives on s until the client's count is reached,
// the stream ends, the test is aborted or hard passes. A stream waits in
// recv with UDT_RCVTIMEO. Messages are read without blocking, waiting in
// UDT::epoll_wait when none is there: 4.11's recvmsg with a timeout waits
// for the next acknowledgement before it looks for a message, so it reads
// about one message per ACK. 4.11's non-blocking recvmsg does not clear the
// socket's readable event once an ACK has set it, so epoll_wait then returns
// at once while no message is complete (a hole waiting for its repair): a
// wait that returns within a millisecond is followed by a millisecond's
// sleep. Without it two readers spun on both cores of a small machine, took
// the time the library's own receive thread needed, and the drops that
// followed slowed a 1 s message test to 11 s.
static void readStream(ServerTest* t, ServerStream* s, bool message, int bufSize, double hard) {
    std::vector<char> buf(bufSize);
    int eid = -1;
    if (message) {
        setBool(s->s, UDT_RCVSYN, false);
        eid = UDT::epoll_create();
        int events = UDT_EPOLL_IN | UDT_EPOLL_ERR;
        UDT::epoll_add_usock(eid, s->s, &events);
    }
    for (;;) {
        int k = message ? UDT::recvmsg(s->s, buf.data(), bufSize) : UDT::recv(s->s, buf.data(), bufSize, 0);
        if (message && k == UDT::ERROR && UDT::getlasterror_code() == CUDTException::EASYNCRCV) {
            std::set<UDTSOCKET> readable;
            double waited = now();
            UDT::epoll_wait(eid, &readable, NULL, kPollMs);
            if (now() - waited < 0.001)
                usleep(1000);
            k = 0; // look at the clock, then read again
        }
        if (k > 0) {
            double n = now();
            if (s->bytes == 0)
                s->first = n;
            s->last = n;
            s->bytes += k;
            if (message)
                s->msgs++;
        }
        int64_t exp = s->expected.load();
        if (exp >= 0 && s->bytes >= exp)
            break;
        if (k == UDT::ERROR) {
            int code = UDT::getlasterror_code();
            if (!isTimeout(code))
                break; // the end (ECONNLOST, ENOCONN, EINVSOCK) or a failure: report what came
        }
        if (t->abort.load() || now() >= hard)
            break;
    }
    if (eid >= 0)
        UDT::epoll_release(eid);
    std::lock_guard<std::mutex> lock(t->mu);
    t->finished++;
    t->cond.notify_all();
}

static void closeAll(ServerTest* t) {
    for (auto& s : t->streams)
        if (s && s->s != UDT::INVALID_SOCK) {
            UDT::close(s->s);
            s->s = UDT::INVALID_SOCK;
        }
}

// listenUDT makes a UDT listener on port, retrying for a few seconds: a
// closed listener holds the port for 3 to 4 s (see testListener).
static UDTSOCKET listenUDT(int port, int mss, bool message, std::string* err) {
    double until = now() + kAcceptTimeout - 2; // within the client's wait for READY
    for (;;) {
        UDTSOCKET ln = UDT::socket(AF_INET, message ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (ln == UDT::INVALID_SOCK) {
            *err = "socket: " + udtError();
            return ln;
        }
        setInt(ln, UDT_MSS, mss);
        sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        if (UDT::bind(ln, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != UDT::ERROR &&
            UDT::listen(ln, 1024) != UDT::ERROR) {
            setBool(ln, UDT_RCVSYN, false); // accept polls, to keep to the deadline
            err->clear();
            return ln;
        }
        *err = "listen: " + udtError();
        UDT::close(ln);
        if (now() >= until)
            return UDT::INVALID_SOCK;
        usleep(100000);
    }
}

// The UDT listener stays open from one test to the next while they ask for
// the same socket type and MSS: 4.11 holds a closed listener's port for
// 3 to 4 seconds (its garbage collector keeps listening sockets 3 s more,
// in case a client is connecting), and a new listener must wait that out.
static std::mutex keptMu;
static UDTSOCKET keptLn = UDT::INVALID_SOCK; // guarded by keptMu
static int keptMSS = 0;                      // guarded by keptMu
static bool keptMessage = false;             // guarded by keptMu

// testListener returns a UDT listener for a test, the kept one if it fits,
// with no connection queued: those came before the test's READY.
static UDTSOCKET testListener(int port, int mss, bool message, std::string* err) {
    std::lock_guard<std::mutex> lock(keptMu);
    if (keptLn != UDT::INVALID_SOCK && (keptMSS != mss || keptMessage != message)) {
        UDT::close(keptLn);
        keptLn = UDT::INVALID_SOCK;
    }
    if (keptLn == UDT::INVALID_SOCK) {
        keptLn = listenUDT(port, mss, message, err);
        keptMSS = mss;
        keptMessage = message;
        return keptLn;
    }
    for (;;) {
        sockaddr_storage peer;
        int len = sizeof(peer);
        UDTSOCKET s = UDT::accept(keptLn, reinterpret_cast<sockaddr*>(&peer), &len);
        if (s == UDT::INVALID_SOCK)
            break;
        UDT::close(s);
    }
    return keptLn;
}

// acceptStreams accepts the test's streams by deadline, each with a hello
// for test id; it closes connections with another.
static bool acceptStreams(UDTSOCKET ln, uint32_t id, int n, bool message, double deadline, ServerTest* t,
                          std::string* err) {
    t->streams.resize(n);
    int got = 0;
    while (got < n) {
        sockaddr_storage peer;
        int len = sizeof(peer);
        UDTSOCKET s = UDT::accept(ln, reinterpret_cast<sockaddr*>(&peer), &len);
        if (s == UDT::INVALID_SOCK) {
            if (isTimeout(UDT::getlasterror_code()) && now() < deadline) {
                usleep(2000);
                continue;
            }
            *err = format("accepting stream %d of %d: ", got + 1, n) +
                   (now() >= deadline ? std::string("timed out") : udtError());
            return false;
        }
        // Accepted sockets inherit the listener's non-blocking mode.
        setBool(s, UDT_RCVSYN, true);
        setBool(s, UDT_SNDSYN, true);
        setInt(s, UDT_RCVTIMEO, kPollMs);
        char b[64];
        int have = 0;
        double helloBy = now() + kCtlTimeout < deadline ? now() + kCtlTimeout : deadline;
        while (have < kHelloSize && now() < helloBy) {
            int k = message ? UDT::recvmsg(s, b, sizeof(b)) : UDT::recv(s, b + have, kHelloSize - have, 0);
            if (k == UDT::ERROR) {
                if (isTimeout(UDT::getlasterror_code()))
                    continue;
                break;
            }
            have += k;
            if (message)
                break; // one message, whole
        }
        uint32_t gotID = have == kHelloSize ? getU32(b + 4) : 0;
        uint32_t idx = have == kHelloSize ? getU32(b + 8) : 0;
        if (have != kHelloSize || memcmp(b, kHelloMagic, 4) != 0 || gotID != id || idx >= uint32_t(n) ||
            t->streams[idx]) {
            UDT::close(s);
            continue;
        }
        t->streams[idx].reset(new ServerStream);
        t->streams[idx]->s = s;
        got++;
    }
    return true;
}

struct ServerReport {
    std::string peer, client, mode;
    int streams = 0;
    double duration = 0, cpu = 0;
    int64_t bytes = 0, msgs = 0;
};

static void printServerTest(const Options& o, const ServerReport& r) {
    double good = mbps(r.bytes, r.duration);
    double mps = r.duration > 0 ? double(r.msgs) / r.duration : 0;
    double cpg = perGB(r.cpu, r.bytes);
    if (o.json) {
        emit(Json()
                 .str("type", "test")
                 .str("peer", r.peer)
                 .str("client", r.client)
                 .str("mode", r.mode)
                 .num("streams", r.streams)
                 .num6("duration_s", r.duration)
                 .num("bytes", r.bytes)
                 .num("messages", r.msgs)
                 .num3("goodput_mbps", good)
                 .num3("msgs_per_s", mps)
                 .num6("cpu_s", r.cpu)
                 .num3("cpu_s_per_gb", cpg)
                 .line());
        return;
    }
    std::string s = format("test from %s (%s): %s, %s, %lld bytes in %.3f s, %.3f Mbit/s", r.peer.c_str(),
                           r.client.c_str(), r.mode.c_str(), plural(r.streams, "stream", "streams").c_str(),
                           (long long)r.bytes, r.duration, round3(good));
    if (r.mode == "message")
        s += format(", %lld msgs, %.3f msgs/s", (long long)r.msgs, round3(mps));
    s += format(", cpu %.3f s (%.3f s/GB)\n", r.cpu, round3(cpg));
    emit(s);
}

static void printServerError(const Options& o, const std::string& peer, const std::string& err) {
    if (o.json)
        emit(Json().str("type", "error").str("peer", peer).str("error", err).line());
    else
        emit(format("test from %s failed: %s\n", peer.c_str(), err.c_str()));
}

// runTest serves one test on ctl; it returns false with err on a failure.
// Once it has sent the result it calls done with its report, then waits for
// the client to hang up. A test that fails calls release, with its sockets
// closed, before it tells the client why: the server takes the next test
// from then on.
static bool runTest(Control& ctl, int port, ServerReport* rep, std::string* err,
                    const std::function<void(const ServerReport&)>& done, const std::function<void()>& release) {
    ServerTest t;
    std::vector<std::thread> readers;
    auto fail = [&]() {
        t.abort = true;
        for (auto& r : readers)
            r.join();
        readers.clear();
        closeAll(&t);
        release();
        std::string why = *err;
        for (char& c : why)
            if (c == '\n' || c == '\r')
                c = ' ';
        ctl.write("ERROR reason=" + why + "\n");
        return false;
    };

    Message m;
    if (!ctl.expect("UDTPERF", now() + kCtlTimeout, &m, err))
        return fail();
    int64_t version = m.integer("version", 0, 1ll << 31, err);
    if (err->empty() && version != kProtoVersion)
        *err = format("protocol version %lld, this server speaks %d", (long long)version, kProtoVersion);
    int streams = 0, mss = 0, msg = 0;
    double secs = 0;
    if (err->empty())
        streams = int(m.integer("streams", 1, kMaxStreams, err));
    if (err->empty()) {
        secs = m.real("secs", err);
        if (err->empty() && !(secs > 0 && secs <= kMaxSecs))
            *err = format("secs=%g: must be more than 0 and at most %d", secs, kMaxSecs);
    }
    if (err->empty())
        mss = int(m.integer("mss", kMinMSS, kMaxMSS, err));
    if (err->empty())
        msg = int(m.integer("msg", 0, kMaxMessageSize, err));
    if (!err->empty())
        return fail();
    rep->client = m.has("impl") ? m.get("impl") : "?";
    rep->mode = modeName(msg);
    rep->streams = streams;
    bool message = msg > 0;

    UDTSOCKET ln = testListener(port, mss, message, err);
    if (ln == UDT::INVALID_SOCK)
        return fail();
    uint32_t id = uint32_t(random()) ^ uint32_t(now() * 1e6);
    double cpu0 = cpuSeconds();
    if (!ctl.write(format("READY id=%u impl=%s\n", id, kImpl))) {
        *err = "control connection: write failed";
        return fail();
    }
    if (!acceptStreams(ln, id, streams, message, now() + kAcceptTimeout, &t, err))
        return fail();

    double doneBy = now() + secs + kCtlTimeout + kDrainTimeout;
    double hard = doneBy + kDrainTimeout;
    int bufSize = msg + 1 > (1 << 20) ? msg + 1 : 1 << 20;
    for (auto& s : t.streams)
        readers.emplace_back(readStream, &t, s.get(), message, bufSize, hard);

    for (bool finished = false; !finished;) {
        if (!ctl.read(doneBy, &m, err)) {
            *err = "waiting for the client's counts: " + *err;
            return fail();
        }
        if (m.verb == "SENT") {
            int64_t idx = m.integer("index", 0, streams - 1, err);
            int64_t n = err->empty() ? m.integer("bytes", 0, 1ll << 62, err) : 0;
            if (!err->empty())
                return fail();
            t.streams[idx]->expected = n;
        } else if (m.verb == "DONE") {
            finished = true;
        } else {
            *err = "control: got " + m.verb + ", want SENT or DONE";
            return fail();
        }
    }
    {
        std::unique_lock<std::mutex> lock(t.mu);
        double until = now() + kDrainTimeout;
        while (t.finished < streams && now() < until)
            t.cond.wait_for(lock, std::chrono::milliseconds(kPollMs));
    }
    t.abort = true; // short: report what came
    for (auto& r : readers)
        r.join();
    readers.clear();
    double cpu = cpuSeconds() - cpu0;

    double first = 0, last = 0;
    for (auto& s : t.streams) {
        if (s->bytes == 0)
            continue;
        if (first == 0 || s->first < first)
            first = s->first;
        if (s->last > last)
            last = s->last;
        rep->bytes += s->bytes;
        rep->msgs += s->msgs;
    }
    rep->duration = last - first;
    rep->cpu = cpu;
    bool ok = ctl.write(format("RESULT streams=%d secs=%.6f cpu=%.6f impl=%s\n", streams, rep->duration, cpu, kImpl));
    for (int i = 0; ok && i < streams; i++) {
        ServerStream* s = t.streams[i].get();
        ok = ctl.write(format("STREAM index=%d bytes=%lld msgs=%lld secs=%.6f\n", i, (long long)s->bytes,
                              (long long)s->msgs, s->last - s->first));
    }
    if (ok) {
        done(*rep); // before END, which lets the client go on to its next test
        ok = ctl.write("END\n");
    }
    if (!ok) {
        *err = "control connection: write failed";
        return fail();
    }
    // The client takes its last figures from its streams, then hangs up:
    // closing them before would end its sockets under it.
    std::string ignored;
    double until = now() + kCtlTimeout;
    while (ctl.read(until, &m, &ignored)) {
    }
    closeAll(&t);
    return true;
}

static void serveOne(Options o, int fd, std::string peer, int port) {
    bool released = false;
    auto release = [&released]() {
        if (!released) {
            released = true;
            serverBusy = false;
        }
    };
    {
        Control ctl(fd);
        ServerReport rep;
        std::string err;
        auto done = [&](const ServerReport& r) {
            ServerReport withPeer = r;
            withPeer.peer = peer;
            printServerTest(o, withPeer);
            release();
        };
        if (!runTest(ctl, port, &rep, &err, done, release))
            printServerError(o, peer, err);
    }
    release();
}

static int runServer(const Options& o) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "udtperf: socket: %s\n", strerror(errno));
        return 1;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(o.port));
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "udtperf: listen tcp :%d: %s\n", o.port, strerror(errno));
        return 1;
    }
    socklen_t alen = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &alen);
    int port = ntohs(a.sin_port);
    if (o.json)
        emit(Json().str("type", "listening").str("impl", kImpl).num("port", port).line());
    else
        emit(format("udtperf server (%s) listening on port %d (TCP control, UDT data)\n", kImpl, port));
    for (;;) {
        sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int c = accept(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
        if (c < 0) {
            if (errno != EINTR)
                usleep(100000); // out of file descriptors, say
            continue;
        }
        timeval tv = {int(kCtlTimeout), 0};
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        bool idle = false;
        if (!serverBusy.compare_exchange_strong(idle, true)) {
            Control busy(c);
            busy.write("ERROR reason=busy with another test\n");
            continue;
        }
        std::thread(serveOne, o, c, peerName(peer, plen), port).detach();
    }
}

// ---------------------------------------------------------------- client

struct ClientStream {
    UDTSOCKET s = UDT::INVALID_SOCK;
    std::atomic<int64_t> written{0}; // bytes sent after the hello
    std::atomic<int64_t> msgs{0};
    std::string err; // the sender's, if it stopped early; owned by it until joined
    double bytesPerPkt = 0; // what one packet in the send buffer holds
    int64_t prevAcked = 0;  // reporter only
};

static void sendStream(ClientStream* cs, const char* buf, int size, bool message, double end) {
    while (now() < end) {
        int k = message ? UDT::sendmsg(cs->s, buf, size, -1, true) : UDT::send(cs->s, buf, size, 0);
        if (k == UDT::ERROR) {
            if (isTimeout(UDT::getlasterror_code()))
                continue;
            cs->err = udtError();
            return;
        }
        if (k > 0) {
            cs->written += k;
            if (message)
                cs->msgs++;
        }
    }
}

// acked is what the receiver has acknowledged of what was sent on cs.
static int64_t acked(ClientStream* cs) {
    int64_t w = cs->written.load();
    int pkts = 0, len = sizeof(pkts);
    if (UDT::getsockopt(cs->s, 0, UDT_SNDDATA, &pkts, &len) == UDT::ERROR)
        pkts = 0;
    return w - int64_t(pkts * cs->bytesPerPkt + 0.5);
}

static void report(const Options& o, std::vector<std::unique_ptr<ClientStream>>& streams, double start, double end) {
    double last = start;
    for (int k = 1; last < end; k++) {
        double at = start + k;
        if (at > end)
            at = end;
        double wait = at - now();
        if (wait > 0)
            usleep(useconds_t(wait * 1e6));
        double secs = now() - last;
        int64_t total = 0, retrans = 0;
        double rtt = 0;
        std::vector<double> per;
        for (auto& cs : streams) {
            int64_t a = acked(cs.get());
            int64_t d = a - cs->prevAcked;
            if (d < 0)
                d = 0;
            if (a > cs->prevAcked)
                cs->prevAcked = a;
            total += d;
            per.push_back(round3(mbps(d, secs)));
            UDT::TRACEINFO t;
            if (UDT::perfmon(cs->s, &t, true) != UDT::ERROR) {
                retrans += t.pktRetrans;
                rtt += t.msRTT;
            }
        }
        rtt /= streams.size();
        double good = mbps(total, secs);
        double from = last - start, to = at - start;
        if (o.json) {
            emit(Json()
                     .str("type", "interval")
                     .num3("start", from)
                     .num3("end", to)
                     .num3("goodput_mbps", good)
                     .floats3("stream_goodput_mbps", per)
                     .num("retrans", retrans)
                     .num3("rtt_ms", rtt)
                     .line());
        } else {
            std::string s = format("[%6.2f-%6.2f s] %10.3f Mbit/s  retr %7lld  rtt %8.3f ms", from, to, round3(good),
                                   (long long)retrans, round3(rtt));
            if (per.size() > 1) {
                s += "  streams";
                for (double x : per)
                    s += format(" %.3f", x);
            }
            emit(s + "\n");
        }
        last = at;
    }
}

static int connectTCP(const std::string& host, int port, std::string* err) {
    addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res;
    int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        *err = std::string("control connection: ") + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (addrinfo* ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        timeval tv = {int(kCtlTimeout), 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); // bounds connect too
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            *err = std::string("control connection: ") + strerror(errno);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static bool readResult(Control& ctl, int n, double deadline, double* secs, double* cpu, std::string* impl,
                       std::vector<int64_t>* bytes, std::vector<int64_t>* msgs, std::string* err) {
    Message m;
    if (!ctl.expect("RESULT", deadline, &m, err)) {
        *err = "waiting for the server's result: " + *err;
        return false;
    }
    *secs = m.real("secs", err);
    if (err->empty())
        *cpu = m.real("cpu", err);
    if (err->empty())
        m.integer("streams", n, n, err);
    if (!err->empty())
        return false;
    *impl = m.has("impl") ? m.get("impl") : "?";
    bytes->assign(n, 0);
    msgs->assign(n, 0);
    for (int i = 0; i < n; i++) {
        if (!ctl.expect("STREAM", deadline, &m, err))
            return false;
        int64_t idx = m.integer("index", 0, n - 1, err);
        int64_t b = err->empty() ? m.integer("bytes", 0, 1ll << 62, err) : 0;
        int64_t k = err->empty() ? m.integer("msgs", 0, 1ll << 62, err) : 0;
        if (err->empty())
            m.real("secs", err);
        if (!err->empty())
            return false;
        (*bytes)[idx] = b;
        (*msgs)[idx] = k;
    }
    return ctl.expect("END", deadline, &m, err);
}

static int fail(const std::string& err) {
    fprintf(stderr, "udtperf: %s\n", err.c_str());
    return 1;
}

static int runClient(const Options& o) {
    std::string err;
    int fd = connectTCP(o.host, o.port, &err);
    if (fd < 0)
        return fail(err);
    Control ctl(fd);
    if (!ctl.write(format("UDTPERF version=%d streams=%d secs=%g mss=%d msg=%d impl=%s\n", kProtoVersion, o.streams,
                          o.secs, o.mss, o.msg, kImpl)))
        return fail("control connection: write failed");
    Message m;
    if (!ctl.expect("READY", now() + kAcceptTimeout, &m, &err))
        return fail(err);
    uint32_t id = uint32_t(m.integer("id", 0, 0xffffffffll, &err));
    if (!err.empty())
        return fail(err);
    std::string server = m.has("impl") ? m.get("impl") : "?";
    bool message = o.msg > 0;
    if (o.json) {
        emit(Json()
                 .str("type", "start")
                 .str("client", kImpl)
                 .str("server", server)
                 .str("host", o.host)
                 .num("port", o.port)
                 .str("mode", modeName(o.msg))
                 .num("streams", o.streams)
                 .num("mss", o.mss)
                 .num("msg_size", o.msg)
                 .numg("secs", o.secs)
                 .line());
    } else {
        std::string mode = message ? format("message %d B", o.msg) : "stream";
        emit(format("udtperf client (%s) to %s port %d, server %s: %s, %s, MSS %d, %g s\n", kImpl, o.host.c_str(),
                    o.port, server.c_str(), mode.c_str(), plural(o.streams, "stream", "streams").c_str(), o.mss,
                    o.secs));
    }

    addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res;
    int rc = getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &res);
    if (rc != 0)
        return fail(std::string("resolve: ") + gai_strerror(rc));
    std::vector<std::unique_ptr<ClientStream>> streams;
    auto closeAll = [&]() {
        for (auto& cs : streams)
            UDT::close(cs->s);
    };
    for (int i = 0; i < o.streams; i++) {
        std::unique_ptr<ClientStream> cs(new ClientStream);
        cs->s = UDT::socket(res->ai_family, message ? SOCK_DGRAM : SOCK_STREAM, 0);
        setInt(cs->s, UDT_MSS, o.mss);
        linger lg = {1, kClientLinger};
        UDT::setsockopt(cs->s, 0, UDT_LINGER, &lg, sizeof(lg));
        setInt(cs->s, UDT_SNDTIMEO, kPollMs);
        if (UDT::connect(cs->s, res->ai_addr, int(res->ai_addrlen)) == UDT::ERROR) {
            err = format("stream %d: connect: ", i) + udtError();
            UDT::close(cs->s);
            closeAll();
            freeaddrinfo(res);
            return fail(err);
        }
        int mss = o.mss, len = sizeof(mss);
        UDT::getsockopt(cs->s, 0, UDT_MSS, &mss, &len); // as negotiated
        int payload = mss - 44;                          // IP, UDP and UDT headers
        cs->bytesPerPkt = message ? double(o.msg) / ((o.msg + payload - 1) / payload) : payload;
        char h[kHelloSize];
        makeHello(h, id, i);
        int k = message ? UDT::sendmsg(cs->s, h, kHelloSize, -1, true) : UDT::send(cs->s, h, kHelloSize, 0);
        streams.push_back(std::move(cs));
        if (k != kHelloSize) {
            closeAll();
            freeaddrinfo(res);
            return fail(format("stream %d: send: ", i) + udtError());
        }
    }
    freeaddrinfo(res);

    // A stream write is a whole number of packets, about 128 KiB.
    int payload = o.mss - 44;
    int size = message ? o.msg : payload * ((128 << 10) / payload > 0 ? (128 << 10) / payload : 1);
    std::vector<char> buf(size);
    double cpu0 = cpuSeconds();
    double start = now();
    double end = start + o.secs;
    for (auto& cs : streams) {
        UDT::TRACEINFO t;
        UDT::perfmon(cs->s, &t, true); // the first interval starts now
    }
    std::vector<std::thread> senders;
    for (auto& cs : streams)
        senders.emplace_back(sendStream, cs.get(), buf.data(), size, message, end);
    report(o, streams, start, end);
    for (auto& t : senders)
        t.join();

    bool ok = true;
    for (int i = 0; ok && i < o.streams; i++)
        ok = ctl.write(format("SENT index=%d bytes=%lld msgs=%lld\n", i, (long long)streams[i]->written.load(),
                              (long long)streams[i]->msgs.load()));
    ok = ok && ctl.write("DONE\n");
    if (!ok) {
        closeAll();
        return fail("control connection: write failed");
    }
    double secs = 0, scpu = 0;
    std::string simpl;
    std::vector<int64_t> rbytes, rmsgs;
    ok = readResult(ctl, o.streams, now() + kResultTimeout, &secs, &scpu, &simpl, &rbytes, &rmsgs, &err);
    double cpu = cpuSeconds() - cpu0;
    if (!ok) {
        for (int i = 0; i < o.streams; i++)
            if (!streams[i]->err.empty()) {
                err += format(" (stream %d stopped sending: %s)", i, streams[i]->err.c_str());
                break;
            }
        closeAll();
        return fail(err);
    }

    int64_t bytes = 0, sent = 0, msgs = 0, msgsSent = 0, retrans = 0;
    double rtt = 0;
    std::vector<double> per;
    int64_t lo = rbytes[0], hi = rbytes[0];
    for (int i = 0; i < o.streams; i++) {
        ClientStream* cs = streams[i].get();
        UDT::TRACEINFO t;
        if (UDT::perfmon(cs->s, &t, false) != UDT::ERROR) {
            retrans += t.pktRetransTotal;
            rtt += t.msRTT;
        }
        sent += cs->written.load();
        msgsSent += cs->msgs.load();
        bytes += rbytes[i];
        msgs += rmsgs[i];
        per.push_back(round3(mbps(rbytes[i], secs)));
        lo = rbytes[i] < lo ? rbytes[i] : lo;
        hi = rbytes[i] > hi ? rbytes[i] : hi;
    }
    closeAll();
    rtt /= o.streams;
    double fairness = o.streams < 2 ? 1 : hi == 0 ? 0 : double(lo) / double(hi);
    double good = mbps(bytes, secs);
    double mps = secs > 0 ? double(msgs) / secs : 0;
    double ccpg = perGB(cpu, bytes), scpg = perGB(scpu, bytes);
    if (o.json) {
        emit(Json()
                 .str("type", "summary")
                 .str("client", kImpl)
                 .str("server", simpl)
                 .str("mode", modeName(o.msg))
                 .num("streams", o.streams)
                 .num("mss", o.mss)
                 .num("msg_size", o.msg)
                 .numg("secs", o.secs)
                 .num6("duration_s", secs)
                 .num("bytes", bytes)
                 .num("bytes_sent", sent)
                 .num3("goodput_mbps", good)
                 .num("messages", msgs)
                 .num("messages_sent", msgsSent)
                 .num3("msgs_per_s", mps)
                 .num("retrans", retrans)
                 .num3("rtt_ms", rtt)
                 .num6("client_cpu_s", cpu)
                 .num6("server_cpu_s", scpu)
                 .num3("client_cpu_s_per_gb", ccpg)
                 .num3("server_cpu_s_per_gb", scpg)
                 .ints("stream_bytes", rbytes)
                 .floats3("stream_goodput_mbps", per)
                 .num3("fairness", fairness)
                 .line());
        return 0;
    }
    std::string s = "- - - - - - - - - - - - - - - - - - - - - - - -\n";
    s += format("duration   %.3f s\n", secs);
    s += format("received   %lld bytes by the server (%lld sent)\n", (long long)bytes, (long long)sent);
    s += format("goodput    %.3f Mbit/s\n", round3(good));
    if (message)
        s += format("messages   %lld received (%lld sent), %.3f msgs/s\n", (long long)msgs, (long long)msgsSent,
                    round3(mps));
    s += format("retrans    %lld packets\n", (long long)retrans);
    s += format("rtt        %.3f ms\n", round3(rtt));
    s += format("cpu        client %s %.3f s (%.3f s/GB), server %s %.3f s (%.3f s/GB)\n", kImpl, cpu, round3(ccpg),
                simpl.c_str(), scpu, round3(scpg));
    if (o.streams > 1) {
        s += "streams   ";
        for (double x : per)
            s += format(" %.3f", x);
        s += format(" Mbit/s, fairness (min/max) %.3f\n", round3(fairness));
    }
    emit(s);
    return 0;
}

int main(int argc, char** argv) {
    Options o = parseArgs(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    srandom(unsigned(time(NULL)) ^ unsigned(getpid()));
    if (UDT::startup() == UDT::ERROR)
        return fail("startup: " + udtError());
    int rc = o.server ? runServer(o) : runClient(o);
    // Other threads may still be inside libudt: leave without destructors.
    fflush(stdout);
    _exit(rc);
}
