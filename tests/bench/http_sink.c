/* http_sink - the vendor stand-in of bench_mailbox.py: a minimal HTTP/1.1
 * server that answers ITX message posts at once with incrementing ids, so
 * the benchmark measures mailbridge and not the vendor. Plain sockets on
 * 127.0.0.1, one thread per keep-alive connection; request bodies
 * (Content-Length or chunked) are read to the last byte and dropped.
 *
 *   http_sink --port-file F [--log F2]
 *
 * POST .../rest/itxems/message         200 {"eactId":N,"conversationEactId":N,"caseEactId":N}
 * POST .../rest/itxems/message/search  200 [] with ITX-Total-Found: 0
 * GET /_stats                          200 {"messages":N}
 * With --log, every message post appends "<CLOCK_REALTIME ns> <N>\n" to F2
 * (one write(2) each, so a reader sees whole lines at once). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/xalloc.h"

#define SINK_LINE_MAX 8192  /* longest request line or header line */
#define SINK_HEADERS_MAX 200 /* most header lines in one request */
#define SINK_READ_SIZE 65536 /* bytes read from the socket at a time */

#define ITX_MESSAGE_SUFFIX "/rest/itxems/message"
#define ITX_SEARCH_SUFFIX "/rest/itxems/message/search"

/* What every connection shares. */
struct sink {
    int log_fd;                      /* -1 without --log */
    atomic_long messages;            /* message posts answered so far */
};

/* One client connection, served by its own thread. */
struct conn {
    int fd;                          /* owned */
    struct sink *sink;               /* borrowed: lives as long as the process */
    size_t start, end;               /* unread bytes are in[start, end) */
    char in[SINK_READ_SIZE];
};

/* What the head of one request said. */
struct request {
    char method[16];
    char path[SINK_LINE_MAX];
    unsigned long long content_length;
    bool chunked;
    bool keep_alive;
    bool expect_continue;
};

/* conn_fill - read more bytes into the (fully consumed) buffer; false on
 * end of stream or error */
static bool conn_fill(struct conn *c)
{
    c->start = c->end = 0;
    for (;;) {
        ssize_t n = read(c->fd, c->in, sizeof(c->in));
        if (n > 0) {
            c->end = (size_t)n;
            return true;
        }
        if (n == 0 || errno != EINTR)
            return false;
    }
}

/* read_line - the next line without its CRLF (or LF) into LINE (SIZE
 * bytes); false on end of stream or a line too long */
static bool read_line(struct conn *c, char *line, size_t size)
{
    size_t len = 0;
    for (;;) {
        char *nl = memchr(c->in + c->start, '\n', c->end - c->start);
        size_t take = nl != NULL ? (size_t)(nl - (c->in + c->start)) : c->end - c->start;
        if (len + take >= size)
            return false;
        memcpy(line + len, c->in + c->start, take);
        len += take;
        c->start += take;
        if (nl != NULL) {
            c->start++; /* the LF */
            if (len > 0 && line[len - 1] == '\r')
                len--;
            line[len] = '\0';
            return true;
        }
        if (!conn_fill(c))
            return false;
    }
}

/* skip_bytes - read and drop N bytes; false on end of stream */
static bool skip_bytes(struct conn *c, unsigned long long n)
{
    while (n > 0) {
        if (c->start == c->end && !conn_fill(c))
            return false;
        size_t take = c->end - c->start;
        if (take > n)
            take = (size_t)n;
        c->start += take;
        n -= take;
    }
    return true;
}

/* send_all - write LEN bytes of DATA; false when the peer is gone */
static bool send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* parse_number - a whole decimal (BASE 10) or hex (BASE 16) number filling
 * all of TEXT; false otherwise */
static bool parse_number(const char *text, int base, unsigned long long *value_r)
{
    char *end;
    errno = 0;
    if (*text == '\0' || *text == '-' || *text == '+')
        return false;
    *value_r = strtoull(text, &end, base);
    return errno == 0 && *end == '\0';
}

/* trim - TEXT without leading and trailing blanks (changed in place) */
static char *trim(char *text)
{
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        text[--len] = '\0';
    return text;
}

/* read_head - the request line and headers into REQ; false on end of
 * stream or a request this sink does not understand */
static bool read_head(struct conn *c, struct request *req)
{
    char line[SINK_LINE_MAX], version[16];
    do { /* RFC 9112: empty lines before a request line are ignored */
        if (!read_line(c, line, sizeof(line)))
            return false;
    } while (line[0] == '\0');
    *req = (struct request){0};
    char *sp1 = strchr(line, ' '), *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp2 == NULL || (size_t)(sp1 - line) >= sizeof(req->method) ||
        strlen(sp2 + 1) >= sizeof(version))
        return false;
    memcpy(req->method, line, (size_t)(sp1 - line));
    memcpy(req->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    req->path[strcspn(req->path, "?")] = '\0'; /* the query plays no part */
    strcpy(version, sp2 + 1);
    req->keep_alive = strcmp(version, "HTTP/1.1") == 0;
    for (int i = 0;; i++) {
        if (i == SINK_HEADERS_MAX || !read_line(c, line, sizeof(line)))
            return false;
        if (line[0] == '\0')
            return true;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            return false;
        *colon = '\0';
        const char *name = line;
        char *value = trim(colon + 1);
        if (strcasecmp(name, "Content-Length") == 0) {
            if (!parse_number(value, 10, &req->content_length))
                return false;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            if (strcasecmp(value, "chunked") != 0)
                return false; /* nothing else is sent by a sane client */
            req->chunked = true;
        } else if (strcasecmp(name, "Connection") == 0) {
            if (strcasecmp(value, "close") == 0)
                req->keep_alive = false;
            else if (strcasecmp(value, "keep-alive") == 0)
                req->keep_alive = true;
        } else if (strcasecmp(name, "Expect") == 0) {
            req->expect_continue = strcasecmp(value, "100-continue") == 0;
        }
    }
}

/* read_chunked - drop a chunked body and its trailer; false on a broken one */
static bool read_chunked(struct conn *c)
{
    char line[SINK_LINE_MAX];
    for (;;) {
        unsigned long long size;
        if (!read_line(c, line, sizeof(line)))
            return false;
        line[strcspn(line, ";")] = '\0'; /* chunk extensions */
        if (!parse_number(trim(line), 16, &size))
            return false;
        if (size == 0)
            break;
        if (!skip_bytes(c, size) || !read_line(c, line, sizeof(line)) || line[0] != '\0')
            return false;
    }
    do { /* the trailer, up to its empty line */
        if (!read_line(c, line, sizeof(line)))
            return false;
    } while (line[0] != '\0');
    return true;
}

/* has_suffix - whether TEXT ends with SUFFIX */
static bool has_suffix(const char *text, const char *suffix)
{
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

/* log_message - append "<CLOCK_REALTIME ns> <N>" to the log in one write */
static void log_message(const struct sink *sink, long n)
{
    if (sink->log_fd < 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char line[64];
    int len = snprintf(line, sizeof(line), "%lld %ld\n",
                       (long long)now.tv_sec * 1000000000LL + now.tv_nsec, n);
    if (write(sink->log_fd, line, (size_t)len) != len)
        fprintf(stderr, "http_sink: cannot write the log: %s\n", strerror(errno));
}

/* respond - the answer to REQ (whose body has been read); false when the
 * peer is gone */
static bool respond(struct conn *c, const struct request *req)
{
    const char *status = "200 OK", *extra = "";
    char body[160];
    if (strcmp(req->method, "POST") == 0 && has_suffix(req->path, ITX_SEARCH_SUFFIX)) {
        extra = "ITX-Total-Found: 0\r\n";
        snprintf(body, sizeof(body), "[]");
    } else if (strcmp(req->method, "POST") == 0 && has_suffix(req->path, ITX_MESSAGE_SUFFIX)) {
        long n = atomic_fetch_add(&c->sink->messages, 1) + 1;
        log_message(c->sink, n);
        snprintf(body, sizeof(body), "{\"eactId\":%ld,\"conversationEactId\":%ld,\"caseEactId\":%ld}",
                 n, n, n);
    } else if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/_stats") == 0) {
        snprintf(body, sizeof(body), "{\"messages\":%ld}", atomic_load(&c->sink->messages));
    } else {
        status = "404 Not Found";
        snprintf(body, sizeof(body), "{\"error\":\"no such resource\"}");
    }
    char head[256];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n%s\r\n%s",
                       status, extra, strlen(body), req->keep_alive ? "" : "Connection: close\r\n",
                       body);
    return len > 0 && (size_t)len < sizeof(head) && send_all(c->fd, head, (size_t)len);
}

/* serve - answer the requests of one connection until it closes, then free it */
static void *serve(void *arg)
{
    struct conn *c = arg; /* owned */
    struct request req;
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    for (;;) {
        if (c->start == c->end && !conn_fill(c))
            break; /* closed between requests */
        if (!read_head(c, &req)) {
            send_all(c->fd, bad, sizeof(bad) - 1);
            break;
        }
        if (req.expect_continue && !send_all(c->fd, go_on, sizeof(go_on) - 1))
            break;
        if (!(req.chunked ? read_chunked(c) : skip_bytes(c, req.content_length)))
            break;
        if (!respond(c, &req) || !req.keep_alive)
            break;
    }
    close(c->fd);
    free(c);
    return NULL;
}

/* listen_loopback - a listening socket on 127.0.0.1 and a free port; exits on failure */
static int listen_loopback(unsigned *port_r)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        fprintf(stderr, "http_sink: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        exit(1);
    }
    *port_r = ntohs(addr.sin_port);
    return fd;
}

/* write_port_file - PORT into PATH through a temporary file and rename, so
 * a reader never sees it half written; exits on failure */
static void write_port_file(const char *path, unsigned port)
{
    char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "http_sink: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    free(tmp);
}

/* accept_loop - a detached thread for every connection, forever */
static void accept_loop(int listen_fd, struct sink *sink)
{
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "http_sink: accept: %s\n", strerror(errno));
            continue;
        }
        int one = 1; /* answers are single small writes: send them at once */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = xmalloc(sizeof(*c));
        c->fd = fd;
        c->sink = sink;
        c->start = c->end = 0;
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&thread, &attr, serve, c);
        pthread_attr_destroy(&attr);
        if (r != 0) {
            fprintf(stderr, "http_sink: cannot start a thread: %s\n", strerror(r));
            close(fd);
            free(c);
        }
    }
}

/* usage - the synopsis on stderr, then exit with CODE */
static void usage(int code)
{
    fprintf(stderr, "usage: http_sink --port-file F [--log F2]\n");
    exit(code);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *log_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
            port_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log_file = argv[++i];
        else
            usage(strcmp(argv[i], "--help") == 0 ? 0 : 2);
    }
    if (port_file == NULL)
        usage(2);
    struct sink sink = {.log_fd = -1};
    atomic_init(&sink.messages, 0);
    if (log_file != NULL) {
        sink.log_fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (sink.log_fd < 0) {
            fprintf(stderr, "http_sink: cannot open %s: %s\n", log_file, strerror(errno));
            return 1;
        }
    }
    unsigned port;
    int listen_fd = listen_loopback(&port);
    write_port_file(port_file, port);
    accept_loop(listen_fd, &sink);
    return 0; /* not reached: the sink runs until it is killed */
}
