/*
 * linx-agent: the per-session supervisor and the workload's real parent.
 *
 * clone() inside Python is not safe and a session must outlive the command that
 * started it, so the syscalls that make and park the child live here. No policy:
 * the library decides, the agent clones, parks, forwards and reports.
 * The wire format is in PROTOCOL.md; keep the two in step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROTO_VERSION 1
#define CTL_FD 3
#define HDR 8
#define MAX_FRAME (1u << 20)
#define MAX_SIGNALS 64
#define MAX_CLIENTS 64
#define MAX_HELD 16
#define RING_SIZE (64 * 1024)
#define LOG_MAX (1024 * 1024)
#define BACKLOG_MAX (4u << 20) /* stop reading the workload while a client lags this much */

enum { REQ_SPAWN = 1, REQ_PROCEED, REQ_ABORT, REQ_SIGNAL, REQ_ATTACH, REQ_INPUT, REQ_RESIZE, REQ_WAIT,
       REQ_HOLD };
enum {
	EV_READY = 64, EV_RUNNING, EV_EXITED, EV_SIGNALED, EV_ABORTED, EV_ERROR, EV_REFUSED,
	EV_RESTARTING, EV_OUTPUT, EV_SYSCALL,
};
enum {
	T_ARGV = 1, T_ENV, T_CLONE_FLAGS, T_TARGET_PID, T_JOIN_NS, T_SESSION_DIR, T_DETACH, T_PTY,
	T_META, T_RESTART, T_MAX_RESTARTS, T_HOOK,
	T_SIGNO = 20, T_REPLAY, T_DATA, T_ROWS, T_COLS,
	T_MOUNT_PROC = 30, T_HOSTNAME, T_LO_UP, T_CWD, T_GID, T_GROUPS, T_UID,
	T_CAP_BOUNDING, T_CAP_SETS, T_CAP_AMBIENT, T_NO_NEW_PRIVS, T_SECCOMP, T_SECCOMP_FLAGS,
	T_SECCOMP_NOTIFY,
	T_HOST_PID = 50, T_CHILD_PID, T_CODE, T_EV_SIGNO, T_ERRNO, T_STAGE, T_MESSAGE, T_REQUEST,
	T_COUNT, T_REASON, T_OUTPUT, T_NR, T_ARCH,
};

enum { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

/* ---- frames ------------------------------------------------------------ */

struct field { uint16_t tag; uint32_t len; const uint8_t *p; };

/* What a request may carry: kind 's' string, 'b' bytes, '4' u32, '8' u64; rep = may repeat. */
struct fieldspec { uint16_t tag; char kind; int rep; int required; };

static const struct fieldspec SPAWN_FIELDS[] = {
	{T_ARGV, 's', 1, 1}, {T_ENV, 's', 1, 0}, {T_CLONE_FLAGS, '8', 0, 0},
	{T_TARGET_PID, '4', 0, 0}, {T_JOIN_NS, '8', 0, 0}, {T_SESSION_DIR, 's', 0, 0},
	{T_DETACH, '4', 0, 0}, {T_PTY, '4', 0, 0}, {T_META, 's', 0, 0}, {T_RESTART, '4', 0, 0},
	{T_MAX_RESTARTS, '4', 0, 0}, {T_HOOK, 's', 1, 0}, {0, 0, 0, 0},
};
static const struct fieldspec PROCEED_FIELDS[] = {
	{T_MOUNT_PROC, '4', 0, 0}, {T_HOSTNAME, 's', 0, 0}, {T_LO_UP, '4', 0, 0},
	{T_CWD, 's', 0, 0}, {T_GID, '4', 0, 0}, {T_GROUPS, 's', 0, 0}, {T_UID, '4', 0, 0},
	{T_CAP_BOUNDING, '8', 0, 0}, {T_CAP_SETS, 'b', 0, 0}, {T_CAP_AMBIENT, '8', 0, 0},
	{T_NO_NEW_PRIVS, '4', 0, 0}, {T_SECCOMP, 'b', 0, 0}, {T_SECCOMP_FLAGS, '4', 0, 0},
	{T_SECCOMP_NOTIFY, '4', 0, 0}, {0, 0, 0, 0},
};
static const struct fieldspec SIGNAL_FIELDS[] = { {T_SIGNO, '4', 0, 1}, {0, 0, 0, 0} };
static const struct fieldspec ATTACH_FIELDS[] = { {T_REPLAY, '4', 0, 0}, {0, 0, 0, 0} };
static const struct fieldspec INPUT_FIELDS[] = { {T_DATA, 'b', 0, 1}, {0, 0, 0, 0} };
static const struct fieldspec RESIZE_FIELDS[] = { {T_ROWS, '4', 0, 1}, {T_COLS, '4', 0, 1}, {0, 0, 0, 0} };
static const struct fieldspec NO_FIELDS[] = { {0, 0, 0, 0} };

struct msg {
	uint8_t type;
	int nfields;
	struct field fields[4096];
};

static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static const struct fieldspec *spec_for(uint8_t type)
{
	switch (type) {
	case REQ_SPAWN: return SPAWN_FIELDS;
	case REQ_PROCEED: return PROCEED_FIELDS;
	case REQ_SIGNAL: return SIGNAL_FIELDS;
	case REQ_ABORT: return NO_FIELDS;
	case REQ_WAIT: return NO_FIELDS;
	case REQ_HOLD: return NO_FIELDS;
	case REQ_ATTACH: return ATTACH_FIELDS;
	case REQ_INPUT: return INPUT_FIELDS;
	case REQ_RESIZE: return RESIZE_FIELDS;
	}
	return NULL;
}

/* Check a frame against the rules of PROTOCOL.md; on failure write why into err. */
static int parse_frame(const uint8_t *buf, uint32_t len, struct msg *m, char *err, size_t errlen)
{
	if (buf[4] != PROTO_VERSION) {
		snprintf(err, errlen, "unsupported protocol version %u (expected %u)", buf[4], PROTO_VERSION);
		return -1;
	}
	if (buf[6] || buf[7]) {
		snprintf(err, errlen, "reserved header bytes are not zero");
		return -1;
	}
	m->type = buf[5];
	const struct fieldspec *spec = spec_for(m->type);
	if (!spec) {
		snprintf(err, errlen, "unknown request type %u", m->type);
		return -1;
	}
	unsigned seen[64] = {0};
	m->nfields = 0;
	uint32_t off = HDR;
	while (off < len) {
		if (len - off < 6) {
			snprintf(err, errlen, "truncated field header at offset %u", off);
			return -1;
		}
		uint16_t tag; memcpy(&tag, buf + off, 2);
		uint32_t flen = get_u32(buf + off + 2);
		off += 6;
		if (flen > len - off) {
			snprintf(err, errlen, "field %u runs past the frame (%u bytes at offset %u)", tag, flen, off);
			return -1;
		}
		int i;
		for (i = 0; spec[i].tag && spec[i].tag != tag; i++)
			;
		if (!spec[i].tag) {
			snprintf(err, errlen, "unknown field %u for request type %u", tag, m->type);
			return -1;
		}
		if ((spec[i].kind == '4' && flen != 4) || (spec[i].kind == '8' && flen != 8)) {
			snprintf(err, errlen, "field %u must be %c bytes, got %u", tag, spec[i].kind, flen);
			return -1;
		}
		if (spec[i].kind == 's' && memchr(buf + off, 0, flen)) {
			snprintf(err, errlen, "field %u holds a NUL byte", tag);
			return -1;
		}
		if (seen[i]++ && !spec[i].rep) {
			snprintf(err, errlen, "field %u repeated", tag);
			return -1;
		}
		if (m->nfields == (int)(sizeof m->fields / sizeof m->fields[0])) {
			snprintf(err, errlen, "too many fields");
			return -1;
		}
		m->fields[m->nfields++] = (struct field){tag, flen, buf + off};
		off += flen;
	}
	for (int i = 0; spec[i].tag; i++)
		if (spec[i].required && !seen[i]) {
			snprintf(err, errlen, "required field %u missing", spec[i].tag);
			return -1;
		}
	return 0;
}

static const struct field *find(const struct msg *m, uint16_t tag)
{
	for (int i = 0; i < m->nfields; i++)
		if (m->fields[i].tag == tag)
			return &m->fields[i];
	return NULL;
}

static char *dup_str(const struct field *f)
{
	char *s = malloc(f->len + 1);
	if (!s)
		_exit(1);
	memcpy(s, f->p, f->len);
	s[f->len] = 0;
	return s;
}

/* ---- the child ---------------------------------------------------------- */

/* The child's report to the agent: a record of errno + stage, then _exit. */
static int status_w = -1;
static int park_fd = -1; /* the wake-up pipe, kept (O_CLOEXEC) for the listener hand-over */

static void __attribute__((noreturn)) child_fail(const char *stage)
{
	int err = errno;
	char rec[64] = {0};
	memcpy(rec, &err, 4);
	strncpy(rec + 4, stage, sizeof rec - 5);
	(void)!write(status_w, rec, sizeof rec);
	_exit(127);
}

static int read_full(int fd, void *p, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static void exec_search(char **argv, char **envp)
{
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = envp; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	int saved = ENOENT;
	char buf[4096];
	const char *p = path;
	for (;;) {
		const char *end = strchrnul(p, ':');
		int dlen = end - p;
		snprintf(buf, sizeof buf, "%.*s%s%s", dlen, p, dlen ? "/" : "", argv[0]);
		execve(buf, argv, envp);
		if (errno != ENOENT && errno != ENOTDIR)
			saved = errno; /* EACCES and friends win over a later ENOENT, as in execvp */
		if (!*end)
			break;
		p = end + 1;
	}
	errno = saved;
}

enum { STDIO_INHERIT, STDIO_PTY, STDIO_PIPE };
static int stdio_mode, stdio_fd = -1; /* set by the agent before clone */

static void child_stdio(void)
{
	if (stdio_mode == STDIO_PTY) {
		/* session leader with the PTY slave as controlling terminal, on 0, 1 and 2 */
		if (setsid() < 0 || ioctl(stdio_fd, TIOCSCTTY, 0) < 0)
			child_fail("stdio");
		for (int fd = 0; fd < 3; fd++)
			if (dup2(stdio_fd, fd) < 0)
				child_fail("stdio");
	} else if (stdio_mode == STDIO_PIPE) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(stdio_fd, 1) < 0 || dup2(stdio_fd, 2) < 0)
			child_fail("stdio");
	}
}

static void child_apply(const struct msg *m, char **argv, char **envp)
{
	const struct field *f;

	child_stdio();

	if ((f = find(m, T_MOUNT_PROC)) && get_u32(f->p)) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			child_fail("mount_proc");
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			child_fail("mount_proc");
	}
	if ((f = find(m, T_HOSTNAME)) && sethostname((const char *)f->p, f->len) < 0)
		child_fail("hostname");
	if ((f = find(m, T_LO_UP)) && get_u32(f->p)) {
		struct ifreq ifr = {0};
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		strcpy(ifr.ifr_name, "lo");
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
			child_fail("lo_up");
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			child_fail("lo_up");
		close(s);
	}
	if ((f = find(m, T_CWD))) {
		char *cwd = dup_str(f);
		if (chdir(cwd) < 0)
			child_fail("chdir");
	}
	/* Before gid/uid: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, which
	 * setresuid to a non-zero uid clears (capabilities(7)). */
	if ((f = find(m, T_CAP_BOUNDING))) {
		uint64_t drop = get_u64(f->p);
		for (int cap = 0; cap < 64; cap++)
			if ((drop >> cap) & 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
				child_fail("cap_drop_bounding");
	}
	int uid_change = find(m, T_UID) != NULL;
	if (uid_change && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		child_fail("setuid");
	if ((f = find(m, T_GROUPS))) {
		gid_t groups[256];
		int n = 0;
		char *s = dup_str(f), *tok, *save = NULL;
		for (tok = strtok_r(s, ",", &save); tok && n < 256; tok = strtok_r(NULL, ",", &save))
			groups[n++] = strtoul(tok, NULL, 10);
		if (setgroups(n, groups) < 0)
			child_fail("setgroups");
	}
	if ((f = find(m, T_GID))) {
		gid_t g = get_u32(f->p);
		if (setresgid(g, g, g) < 0)
			child_fail("setgid");
	}
	if ((f = find(m, T_UID))) {
		uid_t u = get_u32(f->p);
		if (setresuid(u, u, u) < 0)
			child_fail("setuid");
	}
	if ((f = find(m, T_CAP_SETS))) {
		if (f->len != 24) {
			errno = EINVAL;
			child_fail("cap_set_thread");
		}
		uint64_t eff = get_u64(f->p), prm = get_u64(f->p + 8), inh = get_u64(f->p + 16);
		struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct data[2] = {
			{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
			{(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
		};
		if (syscall(SYS_capset, &hdr, data) < 0)
			child_fail("cap_set_thread");
	}
	if ((f = find(m, T_CAP_AMBIENT))) {
		uint64_t amb = get_u64(f->p);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
			child_fail("cap_set_ambient");
		for (int cap = 0; cap < 64; cap++)
			if ((amb >> cap) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
				child_fail("cap_set_ambient");
	}
	if ((f = find(m, T_NO_NEW_PRIVS)) && get_u32(f->p) &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail("no_new_privs");
	/* Last before execve, so the filter need allow nothing of the steps above. */
	if ((f = find(m, T_SECCOMP))) {
		const struct field *fl = find(m, T_SECCOMP_FLAGS), *fn = find(m, T_SECCOMP_NOTIFY);
		int notify = fn && get_u32(fn->p);
		if (f->len == 0 || f->len % sizeof(struct sock_filter)) {
			errno = EINVAL;
			child_fail("seccomp_install");
		}
		struct sock_fprog prog = {
			.len = f->len / sizeof(struct sock_filter),
			.filter = (struct sock_filter *)f->p,
		};
		unsigned int flags = (fl ? get_u32(fl->p) : 0) | (notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0);
		long lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
		if (lfd < 0)
			child_fail("seccomp_install");
		if (notify) {
			/* Hand the listener to the agent (it takes a copy with pidfd_getfd) and wait
			 * until it has: the workload's first syscall blocks until someone answers. The
			 * filter must let this code's own calls through (the library's exec gate). */
			char rec[64] = {0};
			int fd = (int)lfd;
			strcpy(rec + 4, "seccomp_listener");
			memcpy(rec + 60, &fd, 4);
			char c;
			if (write(status_w, rec, sizeof rec) != sizeof rec || read(park_fd, &c, 1) != 0)
				_exit(127);
			close(fd);
		}
	}
	exec_search(argv, envp);
	child_fail("execve");
}

/* Runs in the child between clone and execve: report, park, apply, exec. */
static void __attribute__((noreturn)) child_main(int park_r, char **argv, char **envp)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	close(CTL_FD);
	pid_t self = getpid();
	char rec[4];
	memcpy(rec, &self, 4);
	if (write(status_w, rec, 4) != 4)
		_exit(127);
	/* If the agent dies, so does the workload. While parked, EOF on park_r says the same. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail("pdeathsig");

	uint32_t len;
	if (read_full(park_r, &len, 4) < 0)
		_exit(0); /* aborted, or the agent is gone: never run the workload */
	if (len < HDR || len > MAX_FRAME)
		_exit(127);
	uint8_t *buf = malloc(len);
	static struct msg m;
	char err[256];
	if (!buf)
		_exit(127);
	memcpy(buf, &len, 4);
	if (read_full(park_r, buf + 4, len - 4) < 0)
		_exit(0);
	park_fd = park_r;
	if (parse_frame(buf, len, &m, err, sizeof err) < 0) {
		errno = EPROTO;
		child_fail("malformed_frame");
	}
	child_apply(&m, argv, envp);
	_exit(127);
}

/* ---- clients and events ------------------------------------------------- */

/* A connection that speaks the protocol: the owner (the socketpair on fd 3, which sent
 * spawn) or a client of the session's control socket (attach, kill, wait, ...). Output to
 * each is queued and written without blocking, so a slow reader stalls nobody. */
struct client {
	int fd;
	int owner, attached, waiting;
	uint8_t *in;
	uint32_t inlen, incap;
	uint8_t *out;
	size_t outlen, outcap;
};

static struct client *clients[MAX_CLIENTS];
static int nclients;

struct out { uint8_t buf[65536 + 64]; uint32_t len; };

static void out_begin(struct out *o, uint8_t type)
{
	memset(o->buf, 0, HDR);
	o->buf[4] = PROTO_VERSION;
	o->buf[5] = type;
	o->len = HDR;
	memcpy(o->buf, &o->len, 4);
}

static void out_field(struct out *o, uint16_t tag, const void *p, uint32_t len)
{
	if (o->len + 6 + len > sizeof o->buf)
		len = sizeof o->buf - o->len - 6; /* messages are truncated, never overrun */
	memcpy(o->buf + o->len, &tag, 2);
	memcpy(o->buf + o->len + 2, &len, 4);
	memcpy(o->buf + o->len + 6, p, len);
	o->len += 6 + len;
	memcpy(o->buf, &o->len, 4);
}

static void out_u32(struct out *o, uint16_t tag, uint32_t v) { out_field(o, tag, &v, 4); }
static void out_str(struct out *o, uint16_t tag, const char *s) { out_field(o, tag, s, strlen(s)); }

static void client_drop(struct client *c);

static void client_flush(struct client *c)
{
	while (c->outlen) {
		ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->outlen = 0;
			return; /* the reader is gone; its EOF on input drops it */
		}
		memmove(c->out, c->out + n, c->outlen - n);
		c->outlen -= n;
	}
}

static void client_send(struct client *c, const struct out *o)
{
	if (c->outlen + o->len > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 65536;
		while (cap < c->outlen + o->len)
			cap *= 2;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			_exit(1);
		c->out = p;
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, o->buf, o->len);
	c->outlen += o->len;
	client_flush(c);
}

enum { TO_OWNER = 1, TO_ATTACHED = 2, TO_WAITING = 4 };

static void broadcast(const struct out *o, int to)
{
	for (int i = 0; i < nclients; i++) {
		struct client *c = clients[i];
		if (((to & TO_OWNER) && c->owner) || ((to & TO_ATTACHED) && c->attached) ||
		    ((to & TO_WAITING) && c->waiting))
			client_send(c, o);
	}
}

static struct client *owner(void)
{
	for (int i = 0; i < nclients; i++)
		if (clients[i]->owner)
			return clients[i];
	return NULL;
}

static void error_frame(struct out *o, int err, const char *stage, const char *msg)
{
	out_begin(o, EV_ERROR);
	out_u32(o, T_ERRNO, err);
	out_str(o, T_STAGE, stage);
	if (msg && *msg)
		out_str(o, T_MESSAGE, msg);
}

/* An error before any child exists: to the owner, synchronously (we are about to exit). */
static void send_error(int err, const char *stage, const char *fmt, ...)
{
	struct out o;
	char msg[1024] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	error_frame(&o, err, stage, msg);
	struct client *c = owner();
	if (c) {
		client_send(c, &o);
		int fl = fcntl(c->fd, F_GETFL);
		fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
		while (c->outlen && send(c->fd, c->out, c->outlen, MSG_NOSIGNAL) > 0)
			c->outlen = 0;
	}
}

static void send_refused(struct client *c, uint8_t req, int err, const char *msg)
{
	struct out o;
	out_begin(&o, EV_REFUSED);
	out_u32(&o, T_REQUEST, req);
	out_u32(&o, T_ERRNO, err);
	out_str(&o, T_MESSAGE, msg);
	client_send(c, &o);
}

/* ---- the agent ----------------------------------------------------------- */

enum state { S_START, S_PARKED, S_PROCEEDED, S_RUNNING, S_DONE };

static struct {
	enum state state;
	pid_t child;
	int status_r;     /* child -> agent reports */
	int park_w;       /* agent -> child wake-up; closed = abort */
	int abort_pending;
	int signals[MAX_SIGNALS];
	int nsignals;
	int err_errno;    /* an error record read from the child */
	char err_stage[64];
	int ready_sent;
	uint32_t child_view;  /* the child's own pid: 1 in a new pid namespace */
	/* the session */
	char *dir;        /* session directory, or NULL for a plain spawn */
	char *meta;       /* the library's JSON, stored verbatim in state.json */
	int detach, pty;
	int listen_fd, out_fd, log_fd;
	char pts[64];
	int restart, max_restarts, restarts, stopping;
	char **hooks;
	int nhooks;
	uint8_t *proceed_frame;
	uint32_t proceed_len;
	char **argv, **envp;
	uint64_t flags;
	long long restart_at_ms;
	struct out last; /* the latest terminal event, for state.json */
	int last_set;
	uint8_t ring[RING_SIZE];
	size_t ring_len, ring_pos;
	off_t log_size;
	int held[MAX_HELD];  /* fds kept for the workload's life (the nft owner socket) */
	int nheld;
	int notify;          /* the proceed frame asks for seccomp_notify */
	int notify_fd;       /* the seccomp listener taken from the child */
	struct { uint32_t arch; uint64_t bits[16]; } seen[4]; /* syscalls already reported */
} S = {.status_r = -1, .park_w = -1, .listen_fd = -1, .out_fd = -1, .log_fd = -1, .notify_fd = -1};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char *status_name(void)
{
	if (S.restart_at_ms)
		return "restarting";
	switch (S.state) {
	case S_START: return "created";
	case S_PARKED: case S_PROCEEDED: return "ready";
	case S_RUNNING: return "running";
	case S_DONE: break;
	}
	switch (S.last.buf[5]) {
	case EV_EXITED: return "exited";
	case EV_SIGNALED: return "signaled";
	case EV_ABORTED: return "aborted";
	}
	return "error";
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = *s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* state.json, replaced atomically: what `linx ps/inspect/wait` read when the agent is gone. */
static void write_state(void)
{
	if (!S.dir)
		return;
	char tmp[4200], path[4200];
	snprintf(tmp, sizeof tmp, "%s/.state.json.tmp", S.dir);
	snprintf(path, sizeof path, "%s/state.json", S.dir);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "{\"status\": \"%s\", \"agent_pid\": %d, \"host_pid\": %d, \"child_pid\": %u, "
		"\"restarts\": %d", status_name(), getpid(), S.child, S.child_view, S.restarts);
	if (S.pty)
		fprintf(f, ", \"pty\": \"%s\"", S.pts);
	if (S.state == S_DONE && S.last_set) {
		/* the terminal event's own fields, as the library would decode them */
		for (uint32_t off = HDR; off + 6 <= S.last.len;) {
			uint16_t tag;
			uint32_t len;
			memcpy(&tag, S.last.buf + off, 2);
			memcpy(&len, S.last.buf + off + 2, 4);
			const uint8_t *v = S.last.buf + off + 6;
			if (tag == T_CODE)
				fprintf(f, ", \"exit_code\": %u", get_u32(v));
			else if (tag == T_EV_SIGNO)
				fprintf(f, ", \"signal\": %u", get_u32(v));
			else if (tag == T_ERRNO)
				fprintf(f, ", \"errno\": %u", get_u32(v));
			else if (tag == T_STAGE) {
				struct field fl = {tag, len, v};
				char *st = dup_str(&fl);
				fprintf(f, ", \"stage\": ");
				json_str(f, st);
				free(st);
			}
			off += 6 + len;
		}
		fprintf(f, ", \"finished_at\": %lld", (long long)time(NULL));
	}
	fprintf(f, ", \"meta\": %s}\n", S.meta ? S.meta : "{}");
	fclose(f);
	rename(tmp, path);
}

static void emit(struct out *o, int to)
{
	broadcast(o, to);
}

static void emit_simple(uint8_t type, int to)
{
	struct out o;
	out_begin(&o, type);
	emit(&o, to);
}

/* The one terminal event of the session. */
static void release_held(void)
{
	for (int i = 0; i < S.nheld; i++)
		close(S.held[i]);
	S.nheld = 0;
}

static void emit_terminal(struct out *o)
{
	release_held(); /* the workload is gone: what lived for it (owner nft tables) goes too */
	S.last = *o;
	S.last_set = 1;
	S.state = S_DONE;
	write_state();
	emit(o, TO_OWNER | TO_ATTACHED | TO_WAITING);
}

static void deliver_or_buffer(int signo)
{
	if (S.state == S_RUNNING) {
		kill(S.child, signo);
	} else if (S.nsignals < MAX_SIGNALS) {
		S.signals[S.nsignals++] = signo;
	}
}

/* Workload output (PTY or pipe): the replay ring, the bounded log, attached clients. */
static void on_output(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		S.ring[S.ring_pos] = p[i];
		S.ring_pos = (S.ring_pos + 1) % RING_SIZE;
	}
	S.ring_len = S.ring_len + n > RING_SIZE ? RING_SIZE : S.ring_len + n;
	if (S.log_fd >= 0) {
		if (S.log_size + (off_t)n > LOG_MAX) {
			/* keep two generations: log.1 and log, each at most LOG_MAX */
			char a[4200], b[4200];
			snprintf(a, sizeof a, "%s/log", S.dir);
			snprintf(b, sizeof b, "%s/log.1", S.dir);
			rename(a, b);
			close(S.log_fd);
			S.log_fd = open(a, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			S.log_size = 0;
		}
		if (S.log_fd >= 0 && write(S.log_fd, p, n) > 0)
			S.log_size += n;
	}
	struct out o;
	out_begin(&o, EV_OUTPUT);
	out_field(&o, T_OUTPUT, p, n);
	broadcast(&o, TO_ATTACHED);
}

static void replay_ring(struct client *c)
{
	size_t start = (S.ring_pos + RING_SIZE - S.ring_len) % RING_SIZE, left = S.ring_len;
	while (left) {
		size_t n = left > 65536 ? 65536 : left;
		if (start + n > RING_SIZE)
			n = RING_SIZE - start;
		struct out o;
		out_begin(&o, EV_OUTPUT);
		out_field(&o, T_OUTPUT, S.ring + start, n);
		client_send(c, &o);
		start = (start + n) % RING_SIZE;
		left -= n;
	}
}

static int drain_output(void)
{
	uint8_t buf[65536];
	ssize_t n = read(S.out_fd, buf, sizeof buf);
	if (n > 0) {
		on_output(buf, n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	/* EOF, or EIO once the last slave fd is closed: nothing more until a restart */
	if (!S.pty) {
		close(S.out_fd);
		S.out_fd = -1;
	}
	return -1;
}

/* nsenter(1)'s order; user is opened first but joined last (see enter_namespaces). */
static const struct { uint64_t flag; const char *name; } NS_KINDS[] = {
	{CLONE_NEWUSER, "user"}, {CLONE_NEWCGROUP, "cgroup"}, {CLONE_NEWIPC, "ipc"},
	{CLONE_NEWUTS, "uts"}, {CLONE_NEWNET, "net"}, {CLONE_NEWPID, "pid"},
	{CLONE_NEWNS, "mnt"}, {CLONE_NEWTIME, "time"},
};

/* Join a target's namespaces as nsenter(1) does: user last when deprivileging, and any
 * that failed with EPERM again once inside the user namespace. */
static int enter_namespaces(pid_t target, uint64_t join)
{
	int fds[8];
	const int n = sizeof NS_KINDS / sizeof NS_KINDS[0];
	char path[64], stage[32];
	for (int i = 0; i < n; i++) {
		fds[i] = -1;
		if (!(join & NS_KINDS[i].flag))
			continue;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", target, NS_KINDS[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			snprintf(stage, sizeof stage, "open_ns_%s", NS_KINDS[i].name);
			send_error(errno, stage, "open %s", path);
			return -1;
		}
	}
	/* pass 0: all but user; pass 1: user; pass 2: those that said EPERM before it */
	int retry[8] = {0};
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < n; i++) {
			int is_user = NS_KINDS[i].flag == CLONE_NEWUSER;
			if (fds[i] < 0 || (pass == 0 && is_user) || (pass == 1 && !is_user) ||
			    (pass == 2 && !retry[i]))
				continue;
			if (setns(fds[i], 0) == 0) {
				close(fds[i]);
				fds[i] = -1;
				continue;
			}
			if (pass == 0 && errno == EPERM && fds[0] >= 0) {
				retry[i] = 1;
				continue;
			}
			snprintf(stage, sizeof stage, "setns_%s", NS_KINDS[i].name);
			send_error(errno, stage, "setns into /proc/%d/ns/%s", target, NS_KINDS[i].name);
			return -1;
		}
	}
	return 0;
}

/* PTY master in the agent (non-blocking, read into the ring), slave for the child. */
static int open_pty(void)
{
	if (S.out_fd < 0) {
		S.out_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		if (S.out_fd < 0)
			return send_error(errno, "posix_openpt", "posix_openpt"), -1;
		if (grantpt(S.out_fd) < 0 || unlockpt(S.out_fd) < 0)
			return send_error(errno, "ptsetup", "grantpt/unlockpt"), -1;
		if (ptsname_r(S.out_fd, S.pts, sizeof S.pts) != 0)
			return send_error(errno, "ptsname", "ptsname"), -1;
	}
	stdio_fd = open(S.pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (stdio_fd < 0)
		return send_error(errno, "pts_open", "open %s", S.pts), -1;
	stdio_mode = STDIO_PTY;
	return 0;
}

static int open_pipe(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return send_error(errno, "pipe2", "pipe2"), -1;
	if (S.out_fd >= 0)
		close(S.out_fd);
	S.out_fd = p[0];
	fcntl(S.out_fd, F_SETFL, O_NONBLOCK);
	stdio_fd = p[1];
	stdio_mode = STDIO_PIPE;
	return 0;
}

/* clone3() the child (the kernel makes the user namespace first, so the others are owned
 * by it; CLONE_NEWTIME needs clone3), park it, and remember the pipes. */
static int do_clone(int entering)
{
	int status[2], park[2];
	stdio_mode = STDIO_INHERIT;
	if ((S.pty && open_pty() < 0) || (!S.pty && S.detach && open_pipe() < 0))
		return -1;
	if (pipe2(status, O_CLOEXEC) < 0 || pipe2(park, O_CLOEXEC) < 0) {
		send_error(errno, "pipe2", "pipe2");
		return -1;
	}
	struct clone_args ca = {.flags = S.flags, .exit_signal = SIGCHLD};
	pid_t pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid < 0) {
		int err = errno;
		send_error(err, entering ? "fork" : "clone",
			   err == ENOSPC ? "clone: nesting depth or /proc/sys/user/max_*_namespaces exceeded" :
			   err == EPERM ? "clone: creating namespaces needs CAP_SYS_ADMIN (or a user namespace)" :
			   err == EINVAL ? "clone: this kernel does not support a requested namespace" : "clone");
		close(status[0]); close(status[1]); close(park[0]); close(park[1]);
		return -1;
	}
	if (pid == 0) {
		close(status[0]);
		close(park[1]);
		if (S.listen_fd >= 0)
			close(S.listen_fd);
		status_w = status[1];
		child_main(park[0], S.argv, S.envp);
	}
	close(status[1]);
	close(park[0]);
	if (stdio_fd >= 0) {
		close(stdio_fd);
		stdio_fd = -1;
	}
	S.child = pid;
	S.status_r = status[0];
	S.park_w = park[1];
	S.state = S_START;
	S.ready_sent = 0;
	S.err_errno = 0;
	S.abort_pending = 0;
	return 0;
}

static int make_control_socket(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (snprintf(a.sun_path, sizeof a.sun_path, "%s/ctl.sock", S.dir) >= (int)sizeof a.sun_path) {
		send_error(ENAMETOOLONG, "control_socket", "%s/ctl.sock is too long for a unix socket", S.dir);
		return -1;
	}
	S.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	mode_t old = umask(0177); /* 0600 from birth, never a window with wider access */
	int rc = S.listen_fd < 0 ? -1 : bind(S.listen_fd, (struct sockaddr *)&a, sizeof a);
	umask(old);
	if (rc < 0 || listen(S.listen_fd, 16) < 0) {
		send_error(errno, "control_socket", "bind %s", a.sun_path);
		return -1;
	}
	return 0;
}

static int do_spawn(const struct msg *m)
{
	int argc = 0, envc = 0, have_env = 0;
	for (int i = 0; i < m->nfields; i++) {
		argc += m->fields[i].tag == T_ARGV;
		S.nhooks += m->fields[i].tag == T_HOOK;
		if (m->fields[i].tag == T_ENV)
			envc++, have_env = 1;
	}
	char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
	S.hooks = calloc(S.nhooks + 1, sizeof *S.hooks);
	if (!argv || !envp || !S.hooks)
		_exit(1);
	argc = envc = S.nhooks = 0;
	for (int i = 0; i < m->nfields; i++) {
		if (m->fields[i].tag == T_ARGV)
			argv[argc++] = dup_str(&m->fields[i]);
		else if (m->fields[i].tag == T_ENV)
			envp[envc++] = dup_str(&m->fields[i]);
		else if (m->fields[i].tag == T_HOOK)
			S.hooks[S.nhooks++] = dup_str(&m->fields[i]);
	}
	if (!argv[0][0]) {
		send_error(EINVAL, "malformed_frame", "argv[0] is empty");
		return -1;
	}
	extern char **environ;
	S.argv = argv;
	S.envp = have_env ? envp : environ;

	const struct field *f;
	S.flags = (f = find(m, T_CLONE_FLAGS)) ? get_u64(f->p) : 0;
	S.detach = (f = find(m, T_DETACH)) && get_u32(f->p);
	S.pty = (f = find(m, T_PTY)) && get_u32(f->p);
	S.restart = (f = find(m, T_RESTART)) ? (int)get_u32(f->p) : RESTART_NO;
	S.max_restarts = (f = find(m, T_MAX_RESTARTS)) ? (int)get_u32(f->p) : 0;
	if ((f = find(m, T_META)))
		S.meta = dup_str(f);
	if ((f = find(m, T_SESSION_DIR))) {
		S.dir = dup_str(f);
		if (make_control_socket() < 0)
			return -1;
		char path[4200];
		snprintf(path, sizeof path, "%s/log", S.dir);
		if (S.pty || S.detach)
			S.log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	const struct field *target = find(m, T_TARGET_PID);
	if (target) {
		f = find(m, T_JOIN_NS);
		if (enter_namespaces(get_u32(target->p), f ? get_u64(f->p) : 0) < 0)
			return -1;
		S.flags = 0;
	}
	if (do_clone(target != NULL) < 0)
		return -1;
	write_state();
	return 0;
}

/* Write the proceed frame to the parked child, which parses and applies it itself. */
static void do_proceed(const uint8_t *frame, uint32_t len)
{
	uint32_t done = 0;
	while (done < len) {
		ssize_t n = write(S.park_w, frame + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the child died; SIGCHLD tells the rest */
		done += n;
	}
	if (!S.notify) { /* with seccomp_notify, closed once the listener is ours */
		close(S.park_w);
		S.park_w = -1;
	}
	S.state = S_PROCEEDED;
}

static void do_abort(void)
{
	close(S.park_w);
	S.park_w = -1;
	S.abort_pending = 2; /* fired: the child exits on EOF */
}

/* A restart's checkpoint: the library is not there, so the agent runs the hooks it was
 * given (shell commands with LINX_PID set) and proceeds with the first run's settings. */
static int run_hooks(void)
{
	char pidenv[32];
	snprintf(pidenv, sizeof pidenv, "%d", S.child);
	for (int i = 0; i < S.nhooks; i++) {
		pid_t p = fork();
		if (p == 0) {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			setenv("LINX_PID", pidenv, 1);
			execl("/bin/sh", "sh", "-c", S.hooks[i], (char *)NULL);
			_exit(127);
		}
		int st;
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			return -1;
	}
	return 0;
}

/* seccomp_notify: copy the child's listener (pidfd_getfd), then let it go on to execve. */
static void take_listener(const uint8_t *rec)
{
	int fd, pidfd = syscall(SYS_pidfd_open, S.child, 0);
	memcpy(&fd, rec + 60, 4);
	if (S.notify_fd >= 0)
		close(S.notify_fd); /* a restart's new child brings a new one */
	S.notify_fd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (S.notify_fd < 0) {
		S.err_errno = errno;
		strcpy(S.err_stage, "seccomp_notify");
		kill(S.child, SIGKILL);
	} else {
		fcntl(S.notify_fd, F_SETFD, FD_CLOEXEC);
		memset(S.seen, 0, sizeof S.seen);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (S.park_w >= 0) {
		close(S.park_w);
		S.park_w = -1;
	}
}

/* A notified syscall: report its number the first time it is seen, then let it run
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel carries on as if the filter had allowed it). */
static void serve_notify(void)
{
	struct seccomp_notif req;
	memset(&req, 0, sizeof req);
	if (ioctl(S.notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
		if (errno != EINTR && errno != ENOENT) {
			close(S.notify_fd);
			S.notify_fd = -1;
		}
		return;
	}
	int slot = 0;
	while (slot < 3 && S.seen[slot].arch && S.seen[slot].arch != req.data.arch)
		slot++;
	S.seen[slot].arch = req.data.arch;
	int known = req.data.nr >= 0 && req.data.nr < 1024;
	uint64_t bit = known ? 1ULL << (req.data.nr & 63) : 0;
	if (!known || !(S.seen[slot].bits[req.data.nr >> 6] & bit)) {
		if (known)
			S.seen[slot].bits[req.data.nr >> 6] |= bit;
		struct out o;
		out_begin(&o, EV_SYSCALL);
		out_u32(&o, T_NR, (uint32_t)req.data.nr);
		out_u32(&o, T_ARCH, req.data.arch);
		emit(&o, TO_OWNER);
	}
	struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
	(void)!ioctl(S.notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT: it died meanwhile */
}

/* The child's reports: its pid (then ready), an error record, the seccomp listener, or EOF
 * (exec happened). */
static void read_status(void)
{
	uint8_t rec[64];
	ssize_t n = read(S.status_r, rec, S.ready_sent ? sizeof rec : 4);
	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(S.status_r);
		S.status_r = -1;
		if (!S.ready_sent) {
			S.err_errno = EIO;
			strcpy(S.err_stage, "ready_frame");
		} else if (S.state == S_PROCEEDED && !S.err_errno) {
			S.state = S_RUNNING;
			write_state();
			emit_simple(EV_RUNNING, TO_OWNER);
			for (int i = 0; i < S.nsignals; i++)
				kill(S.child, S.signals[i]);
			S.nsignals = 0;
		}
		return;
	}
	if (!S.ready_sent) {
		uint32_t cpid;
		memcpy(&cpid, rec, 4);
		S.child_view = cpid;
		struct out o;
		out_begin(&o, EV_READY);
		out_u32(&o, T_HOST_PID, S.child);
		out_u32(&o, T_CHILD_PID, cpid);
		S.ready_sent = 1;
		S.state = S_PARKED;
		write_state();
		emit(&o, TO_OWNER);
		if (S.abort_pending) {
			do_abort();
		} else if (S.restarts && S.proceed_frame) {
			if (run_hooks() < 0) {
				kill(S.child, SIGKILL);
				S.err_errno = ECANCELED;
				strcpy(S.err_stage, "checkpoint");
			} else {
				do_proceed(S.proceed_frame, S.proceed_len);
			}
		}
		return;
	}
	if (n == sizeof rec && S.notify && !memcmp(rec, "\0\0\0\0seccomp_listener", 21)) {
		take_listener(rec);
		return;
	}
	if (n == sizeof rec) {
		memcpy(&S.err_errno, rec, 4);
		rec[63] = 0;
		snprintf(S.err_stage, sizeof S.err_stage, "%s", (char *)rec + 4);
	}
}

/* The seed's outcome table: exit 0 and abort never restart under on-failure; a non-zero
 * exit, a signal and a setup error do. `always` restarts all but abort. A signal sent by a
 * client (linx kill, rm -f) stops the session for good, as `docker stop` does. */
static int should_restart(uint8_t type, uint32_t code)
{
	if (S.restart == RESTART_NO || S.stopping || type == EV_ABORTED)
		return 0;
	if (S.max_restarts && S.restarts >= S.max_restarts)
		return 0;
	if (S.restart == RESTART_ON_FAILURE && type == EV_EXITED && code == 0)
		return 0;
	return S.proceed_frame != NULL;
}

static void reap(void)
{
	int st;
	pid_t p = waitpid(S.child, &st, WNOHANG);
	if (p != S.child)
		return;
	while (S.status_r >= 0)
		read_status(); /* the child is gone, so this ends in EOF */
	if (S.out_fd >= 0)
		while (drain_output() > 0)
			; /* the last words before the end */
	struct out o;
	char reason[128];
	uint32_t code = 0;
	if (S.err_errno) {
		error_frame(&o, S.err_errno, S.err_stage, NULL);
		snprintf(reason, sizeof reason, "%s failed", S.err_stage);
	} else if (S.state != S_RUNNING) {
		if (S.abort_pending) {
			out_begin(&o, EV_ABORTED);
		} else {
			char msg[128];
			snprintf(msg, sizeof msg, "the child died at the checkpoint (%s %d)",
				 WIFSIGNALED(st) ? "signal" : "status",
				 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			error_frame(&o, ECHILD, "checkpoint", msg);
		}
		snprintf(reason, sizeof reason, "died at the checkpoint");
	} else if (WIFEXITED(st)) {
		out_begin(&o, EV_EXITED);
		code = WEXITSTATUS(st);
		out_u32(&o, T_CODE, code);
		snprintf(reason, sizeof reason, "exited %u", code);
	} else {
		out_begin(&o, EV_SIGNALED);
		out_u32(&o, T_EV_SIGNO, WTERMSIG(st));
		snprintf(reason, sizeof reason, "signal %d", WTERMSIG(st));
	}
	if (S.park_w >= 0) {
		close(S.park_w);
		S.park_w = -1;
	}
	if (should_restart(o.buf[5], code)) {
		S.restarts++;
		struct out r;
		out_begin(&r, EV_RESTARTING);
		out_u32(&r, T_COUNT, S.restarts);
		out_str(&r, T_REASON, reason);
		int shift = S.restarts < 6 ? S.restarts - 1 : 5;
		S.restart_at_ms = now_ms() + (100LL << shift); /* 100 ms doubling, at most 3.2 s */
		S.state = S_START;
		S.child = 0;
		write_state();
		emit(&r, TO_OWNER | TO_ATTACHED);
		return;
	}
	emit_terminal(&o);
}

static void __attribute__((noreturn)) agent_exit(int code)
{
	if (S.child > 0 && S.state != S_DONE) {
		kill(S.child, SIGKILL);
		waitpid(S.child, NULL, 0);
	}
	/* hand over what is queued (a short grace), then go */
	long long deadline = now_ms() + 1000;
	for (int i = 0; i < nclients; i++) {
		struct client *c = clients[i];
		char buf[4096];
		while (recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
			; /* unread input would reset the peer before it reads our last event */
		while (c->outlen && now_ms() < deadline) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			if (poll(&p, 1, 50) > 0)
				client_flush(c);
		}
	}
	if (S.dir) {
		char path[4200];
		snprintf(path, sizeof path, "%s/ctl.sock", S.dir);
		unlink(path);
	}
	_exit(code);
}

static void remove_session_dir(void)
{
	static const char *files[] = {"ctl.sock", "state.json", ".state.json.tmp", "log", "log.1"};
	char path[4200];
	if (!S.dir)
		return;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", S.dir, files[i]);
		unlink(path);
	}
	rmdir(S.dir);
	free(S.dir);
	S.dir = NULL;
}

static struct client *client_add(int fd, int is_owner)
{
	if (nclients == MAX_CLIENTS) {
		close(fd);
		return NULL;
	}
	struct client *c = calloc(1, sizeof *c);
	if (!c)
		_exit(1);
	c->fd = fd;
	c->owner = is_owner;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	clients[nclients++] = c;
	return c;
}

static void client_drop(struct client *c)
{
	int was_owner = c->owner;
	for (int i = 0; i < nclients; i++)
		if (clients[i] == c) {
			clients[i] = clients[--nclients];
			break;
		}
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
	if (was_owner && !S.detach && S.state != S_DONE)
		agent_exit(0); /* the library is gone before the end: take the workload down */
	if (was_owner && (S.state == S_START || S.state == S_PARKED) && !S.restarts) {
		/* gone before proceed: nobody will release the child, and it never ran */
		remove_session_dir();
		agent_exit(0);
	}
}

static void handle_frame(struct client *c, const uint8_t *frame, uint32_t len)
{
	static struct msg m;
	char err[256] = "";
	int bad = parse_frame(frame, len, &m, err, sizeof err) < 0;
	if (bad || m.type == REQ_SPAWN) {
		struct out o;
		error_frame(&o, EPROTO, "malformed_frame", bad ? err : "spawn sent twice");
		client_send(c, &o);
		if (c->owner)
			agent_exit(2); /* the owner is broken: nothing it asks can be trusted */
		client_drop(c);
		return;
	}
	switch (m.type) {
	case REQ_PROCEED:
		if (S.state == S_START)
			send_refused(c, m.type, EAGAIN, "not ready: the child has not reached the checkpoint");
		else if (S.state != S_PARKED || S.abort_pending)
			send_refused(c, m.type, EALREADY, "already proceeded or aborted");
		else {
			S.proceed_frame = malloc(len);
			if (!S.proceed_frame)
				_exit(1);
			memcpy(S.proceed_frame, frame, len);
			S.proceed_len = len;
			const struct field *fn = find(&m, T_SECCOMP_NOTIFY);
			S.notify = fn && get_u32(fn->p);
			do_proceed(frame, len);
		}
		break;
	case REQ_ABORT:
		if (S.state == S_START)
			S.abort_pending = 1;
		else if (S.state == S_PARKED && !S.abort_pending)
			do_abort();
		else if (S.state == S_PARKED)
			send_refused(c, m.type, EALREADY, "already aborted");
		else
			send_refused(c, m.type, EBUSY, "running: past the checkpoint, use a signal");
		break;
	case REQ_SIGNAL: {
		uint32_t signo = get_u32(find(&m, T_SIGNO)->p);
		if (signo < 1 || signo >= (uint32_t)NSIG) {
			send_refused(c, m.type, EINVAL, "signal number out of range");
		} else {
			S.stopping = 1;
			deliver_or_buffer(signo);
		}
		break;
	}
	case REQ_ATTACH: {
		const struct field *f = find(&m, T_REPLAY);
		c->attached = 1;
		if (f && get_u32(f->p))
			replay_ring(c);
		break;
	}
	case REQ_INPUT: {
		const struct field *f = find(&m, T_DATA);
		if (!S.pty) {
			send_refused(c, m.type, ENOTTY, "the session has no terminal (start it with -t)");
			break;
		}
		/* The master is non-blocking; a full input queue drops the rest, as a terminal would. */
		uint32_t done = 0;
		while (done < f->len) {
			ssize_t n = write(S.out_fd, f->p + done, f->len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (errno == EAGAIN) {
					struct pollfd p = {.fd = S.out_fd, .events = POLLOUT};
					if (poll(&p, 1, 1000) > 0)
						continue;
				}
				break;
			}
			done += n;
		}
		break;
	}
	case REQ_RESIZE: {
		struct winsize ws = {.ws_row = get_u32(find(&m, T_ROWS)->p),
				     .ws_col = get_u32(find(&m, T_COLS)->p)};
		if (!S.pty)
			send_refused(c, m.type, ENOTTY, "the session has no terminal (start it with -t)");
		else
			ioctl(S.out_fd, TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH to the foreground */
		break;
	}
	case REQ_WAIT:
		c->waiting = 1;
		break;
	case REQ_HOLD:
		break; /* its fds were taken in client_read */
	}
}

/* Client input: a growing buffer cut into frames. Returns -1 when the client is gone. */
static int client_read(struct client *c)
{
	if (c->incap - c->inlen < 65536) {
		c->incap = c->incap ? c->incap * 2 : 131072;
		c->in = realloc(c->in, c->incap);
		if (!c->in)
			_exit(1);
	}
	/* fds come with a hold request (SCM_RIGHTS); the agent keeps them open */
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_HELD)]; } cm;
	struct iovec iov = {c->in + c->inlen, c->incap - c->inlen};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			    .msg_controllen = sizeof cm.buf};
	ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		int nfds = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < nfds; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
			if (S.nheld < MAX_HELD && S.state != S_DONE)
				S.held[S.nheld++] = fd;
			else
				close(fd);
		}
	}
	if (n <= 0)
		return -1;
	c->inlen += n;
	uint32_t off = 0;
	while (c->inlen - off >= 4) {
		uint32_t flen = get_u32(c->in + off);
		if (flen < HDR || flen > MAX_FRAME) {
			struct out o;
			char msg[64];
			snprintf(msg, sizeof msg, "frame length %u out of range", flen);
			error_frame(&o, EPROTO, "malformed_frame", msg);
			client_send(c, &o);
			if (c->owner)
				agent_exit(2);
			return -1;
		}
		if (c->inlen - off < flen)
			break;
		int nc = nclients;
		handle_frame(c, c->in + off, flen);
		if (nclients < nc)
			return 1; /* handle_frame dropped it */
		off += flen;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	return 0;
}

/* The first frame must be spawn: read it whole, blocking. */
static int read_spawn(struct msg *m)
{
	uint32_t len;
	char err[256];
	if (read_full(CTL_FD, &len, 4) < 0)
		return -1;
	if (len < HDR || len > MAX_FRAME) {
		send_error(EPROTO, "malformed_frame", "frame length %u out of range", len);
		return -1;
	}
	uint8_t *buf = malloc(len);
	if (!buf)
		_exit(1);
	memcpy(buf, &len, 4);
	if (read_full(CTL_FD, buf + 4, len - 4) < 0)
		return -1;
	if (parse_frame(buf, len, m, err, sizeof err) < 0) {
		send_error(EPROTO, "malformed_frame", "%s", err);
		return -1;
	}
	if (m->type != REQ_SPAWN) {
		send_error(EPROTO, "malformed_frame", "first request must be spawn, got type %u", m->type);
		return -1;
	}
	return 0;
}

/* A detached session outlives the command that started it: fork so the library need not
 * reap us, leave its session and terminal, and keep nothing of its stdio. */
static void detach_from_caller(void)
{
	pid_t p = fork();
	if (p < 0)
		return;
	if (p > 0)
		_exit(0);
	setsid();
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
}

int main(void)
{
	if (fcntl(CTL_FD, F_GETFD) < 0) {
		fprintf(stderr, "linx-agent: fd 3 is not the control socket; see agent/PROTOCOL.md\n");
		return 2;
	}
	fcntl(CTL_FD, F_SETFD, FD_CLOEXEC);
	syscall(SYS_close_range, CTL_FD + 1, ~0U, 0);

	/* Signals come through a signalfd so the loop stays single-threaded and race-free. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	/* The terminal sends SIGINT/SIGQUIT to the workload itself; forwarding would double them. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	struct client *own = client_add(CTL_FD, 1);
	static struct msg spawn;
	int flags = fcntl(CTL_FD, F_GETFL);
	fcntl(CTL_FD, F_SETFL, flags & ~O_NONBLOCK);
	if (read_spawn(&spawn) < 0)
		agent_exit(2);
	fcntl(CTL_FD, F_SETFL, flags | O_NONBLOCK);
	const struct field *df = find(&spawn, T_DETACH);
	if (df && get_u32(df->p))
		detach_from_caller();
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		send_error(errno, "signalfd", "signalfd");
		agent_exit(1);
	}
	if (do_spawn(&spawn) < 0)
		agent_exit(1);
	(void)own;

	while (S.state != S_DONE) {
		struct pollfd p[5 + MAX_CLIENTS];
		int lagging = 0;
		for (int i = 0; i < nclients; i++)
			lagging |= clients[i]->outlen > BACKLOG_MAX;
		p[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
		p[1] = (struct pollfd){.fd = S.status_r, .events = POLLIN};
		p[2] = (struct pollfd){.fd = lagging ? -1 : S.out_fd, .events = POLLIN};
		p[3] = (struct pollfd){.fd = S.listen_fd, .events = POLLIN};
		p[4] = (struct pollfd){.fd = S.notify_fd, .events = POLLIN};
		int n = nclients;
		struct client *polled[MAX_CLIENTS];
		for (int i = 0; i < n; i++) {
			polled[i] = clients[i];
			p[5 + i] = (struct pollfd){.fd = clients[i]->fd,
						   .events = POLLIN | (clients[i]->outlen ? POLLOUT : 0)};
		}
		int timeout = -1;
		if (S.restart_at_ms) {
			long long left = S.restart_at_ms - now_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		if (poll(p, 5 + n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			agent_exit(1);
		}
		if (S.restart_at_ms && now_ms() >= S.restart_at_ms) {
			S.restart_at_ms = 0;
			if (do_clone(0) < 0) {
				struct out o;
				error_frame(&o, errno, "clone", "restart");
				emit_terminal(&o);
				break;
			}
			write_state();
		}
		if (p[4].revents & POLLIN)
			serve_notify();
		else if (p[4].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			close(S.notify_fd); /* every task of the filter is gone */
			S.notify_fd = -1;
		}
		if (p[1].revents)
			read_status();
		if (p[2].revents & (POLLIN | POLLHUP | POLLERR))
			for (int k = 0; k < 16 && S.out_fd >= 0 && drain_output() > 0; k++)
				;
		if (p[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGCHLD) {
					reap();
				} else {
					S.stopping = 1;
					deliver_or_buffer(si.ssi_signo);
				}
			}
		}
		if (p[3].revents) {
			int fd = accept4(S.listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				client_add(fd, 0);
		}
		for (int i = 0; i < n; i++) {
			struct client *c = polled[i];
			int alive = 0;
			for (int j = 0; j < nclients; j++)
				alive |= clients[j] == c;
			if (!alive || !p[5 + i].revents)
				continue;
			if (p[5 + i].revents & POLLOUT)
				client_flush(c);
			if (p[5 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
				int r = client_read(c);
				if (r < 0)
					client_drop(c);
			}
		}
	}
	agent_exit(0);
}
