/*
 * multinet: the CNI plugin executable, native build of cni/multinet.py (same protocol, same answers).
 *
 * A thin shim: forwards the CNI_* environment and stdin untouched to netmgr's local unix socket and prints what
 * comes back. CPython needs ~6-7 ms just to start, about the whole budget of a reference CNI ADD; this starts in
 * well under a millisecond. Request: "KEY=VALUE\0" per CNI_* variable, an empty entry, then stdin.
 * Reply: the exit status in ASCII, a newline, then stdout. VERSION is answered here (works while multinet is down).
 * Socket: $MULTINET_CNI_SOCKET, else the path in the file `multinet.socket` next to this executable (written by
 * `multinetctl install-cni`), else /run/multinet/cni.sock. Never from the network configuration: parts of it come
 * from pod annotations (Multus copies `cni-args` into `args`), and a pod must not choose where root talks to.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static const char *VERSIONS[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define NVERSIONS (sizeof(VERSIONS) / sizeof(VERSIONS[0]))
static const char *DEFAULT_SOCKET = "/run/multinet/cni.sock";

struct buf { char *data; size_t len, cap; };

static void append(struct buf *b, const void *data, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + len + 1 > cap) cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data) { perror("multinet"); exit(1); }
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

static void read_all(int fd, struct buf *out) {
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        append(out, chunk, (size_t)n);
    }
}

/* The string value of the first "key": "value" in raw JSON (values looked for are versions and paths). */
static char *string_field(const struct buf *in, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    if (!in->data) return NULL;
    char *at = strstr(in->data, pattern);
    if (!at) return NULL;
    at += strlen(pattern);
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    if (*at != ':') return NULL;
    at++;
    while (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r') at++;
    if (*at != '"') return NULL;
    char *end = strchr(at + 1, '"');
    if (!end) return NULL;
    return strndup(at + 1, (size_t)(end - at - 1));
}

/* The first line of `multinet.socket` next to this executable, or NULL. */
static char *installed_socket(void) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 32);
    if (n <= 0) return NULL;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return NULL;
    strcpy(slash + 1, "multinet.socket");
    FILE *f = fopen(self, "re");
    if (!f) return NULL;
    char line[4096];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (!got) return NULL;
    line[strcspn(line, "\r\n")] = 0;
    return line[0] ? strdup(line) : NULL;
}

static int supported(const char *version) {
    for (size_t i = 0; version && i < NVERSIONS; i++)
        if (strcmp(version, VERSIONS[i]) == 0) return 1;
    return 0;
}

/* Stops at the first error: on EPIPE (netmgr answered early, e.g. a request too large) the answer is still read. */
static void write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static void fail(int code, const char *version, const char *msg) {
    struct buf out = {0};
    char head[96];
    snprintf(head, sizeof head, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version, code);
    append(&out, head, strlen(head));
    for (const char *c = msg; *c; c++) {
        if (*c == '"' || *c == '\\') append(&out, "\\", 1);
        append(&out, c, 1);
    }
    append(&out, "\"}", 2);
    write_all(1, out.data, out.len);
    exit(1);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a closed socket is an error to handle, not a reason to die silently */
    const char *command = getenv("CNI_COMMAND");
    command = command ? command : "";
    struct buf in = {0};
    if (strcmp(command, "VERSION") != 0 || !isatty(0)) read_all(0, &in);
    char *asked = string_field(&in, "cniVersion");
    const char *version = supported(asked) ? asked : VERSIONS[NVERSIONS - 1];
    const char *commands[] = {"ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"};
    int known = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) known |= strcmp(command, commands[i]) == 0;
    if (!known) {
        char msg[512];
        snprintf(msg, sizeof msg, "CNI_COMMAND '%.200s' is not one of ADD, DEL, CHECK, STATUS, GC, VERSION", command);
        fail(4, version, msg);
    }
    if (strcmp(command, "VERSION") == 0) {
        printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[", version);
        for (size_t i = 0; i < NVERSIONS; i++) printf("%s\"%s\"", i ? "," : "", VERSIONS[i]);
        printf("]}");
        return 0;
    }
    const char *path = getenv("MULTINET_CNI_SOCKET");
    char *installed = installed_socket();
    if (!path || !*path) path = installed ? installed : DEFAULT_SOCKET;

    struct buf request = {0};
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CNI_", 4) == 0) append(&request, *e, strlen(*e) + 1);
    append(&request, "", 1);
    if (in.len) append(&request, in.data, in.len);

    /* STATUS answers availability (50: ADD would fail); every other command may simply be retried (11) */
    int unreachable = strcmp(command, "STATUS") == 0 ? 50 : 11;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char msg[1024];
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(msg, sizeof msg, "cannot reach multinet at %.300s (path too long): use a shorter socket path", path);
        fail(unreachable, version, msg);
    }
    strcpy(addr.sun_path, path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        snprintf(msg, sizeof msg,
                 "cannot reach multinet at %.300s (%s): it is not running, or not yet in sync with its catalog (the "
                 "socket opens once it is); try again later, and check `multinetctl up`", path, strerror(errno));
        fail(unreachable, version, msg);
    }
    write_all(fd, request.data, request.len);  /* (failures below: STATUS answers availability, 50) */
    shutdown(fd, SHUT_WR);
    struct buf reply = {0};
    read_all(fd, &reply);
    close(fd);
    char *newline = reply.data ? memchr(reply.data, '\n', reply.len) : NULL;
    if (!newline || newline == reply.data) {
        snprintf(msg, sizeof msg, "multinet at %.300s closed the connection without an answer: try again", path);
        fail(unreachable, version, msg);
    }
    for (char *c = reply.data; c < newline; c++)
        if (*c < '0' || *c > '9') {
            snprintf(msg, sizeof msg, "multinet at %.300s closed the connection without an answer: try again", path);
            fail(unreachable, version, msg);
        }
    int status = atoi(reply.data);
    write_all(1, newline + 1, reply.len - (size_t)(newline + 1 - reply.data));
    return status;
}
