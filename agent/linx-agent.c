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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROTO_VERSION 1
#define CTL_FD 3
#define HDR 8
#define MAX_FRAME (1u << 20)
#define MAX_SIGNALS 64

enum { REQ_SPAWN = 1, REQ_PROCEED = 2, REQ_ABORT = 3, REQ_SIGNAL = 4 };
enum { EV_READY = 64, EV_RUNNING, EV_EXITED, EV_SIGNALED, EV_ABORTED, EV_ERROR, EV_REFUSED };
enum {
	T_ARGV = 1, T_ENV = 2, T_CLONE_FLAGS = 3, T_TARGET_PID = 4, T_JOIN_NS = 5,
	T_SIGNO = 20,
	T_MOUNT_PROC = 30, T_HOSTNAME, T_LO_UP, T_CWD, T_GID, T_GROUPS, T_UID,
	T_CAP_BOUNDING, T_CAP_SETS, T_CAP_AMBIENT, T_NO_NEW_PRIVS, T_SECCOMP, T_SECCOMP_FLAGS,
	T_HOST_PID = 50, T_CHILD_PID, T_CODE, T_EV_SIGNO, T_ERRNO, T_STAGE, T_MESSAGE, T_REQUEST,
};

/* ---- frames ------------------------------------------------------------ */

struct field { uint16_t tag; uint32_t len; const uint8_t *p; };

/* What a request may carry: kind 's' string, 'b' bytes, '4' u32, '8' u64; rep = may repeat. */
struct fieldspec { uint16_t tag; char kind; int rep; int required; };

static const struct fieldspec SPAWN_FIELDS[] = {
	{T_ARGV, 's', 1, 1}, {T_ENV, 's', 1, 0}, {T_CLONE_FLAGS, '8', 0, 0},
	{T_TARGET_PID, '4', 0, 0}, {T_JOIN_NS, '8', 0, 0}, {0, 0, 0, 0},
};
static const struct fieldspec PROCEED_FIELDS[] = {
	{T_MOUNT_PROC, '4', 0, 0}, {T_HOSTNAME, 's', 0, 0}, {T_LO_UP, '4', 0, 0},
	{T_CWD, 's', 0, 0}, {T_GID, '4', 0, 0}, {T_GROUPS, 's', 0, 0}, {T_UID, '4', 0, 0},
	{T_CAP_BOUNDING, '8', 0, 0}, {T_CAP_SETS, 'b', 0, 0}, {T_CAP_AMBIENT, '8', 0, 0},
	{T_NO_NEW_PRIVS, '4', 0, 0}, {T_SECCOMP, 'b', 0, 0}, {T_SECCOMP_FLAGS, '4', 0, 0},
	{0, 0, 0, 0},
};
static const struct fieldspec SIGNAL_FIELDS[] = { {T_SIGNO, '4', 0, 1}, {0, 0, 0, 0} };
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

/* ---- outgoing events ---------------------------------------------------- */

struct out { uint8_t buf[4096]; uint32_t len; };

static void out_begin(struct out *o, uint8_t type)
{
	memset(o->buf, 0, HDR);
	o->buf[4] = PROTO_VERSION;
	o->buf[5] = type;
	o->len = HDR;
}

static void out_field(struct out *o, uint16_t tag, const void *p, uint32_t len)
{
	if (o->len + 6 + len > sizeof o->buf)
		len = sizeof o->buf - o->len - 6; /* messages are truncated, never overrun */
	memcpy(o->buf + o->len, &tag, 2);
	memcpy(o->buf + o->len + 2, &len, 4);
	memcpy(o->buf + o->len + 6, p, len);
	o->len += 6 + len;
}

static void out_u32(struct out *o, uint16_t tag, uint32_t v) { out_field(o, tag, &v, 4); }
static void out_str(struct out *o, uint16_t tag, const char *s) { out_field(o, tag, s, strlen(s)); }

static int ctl_open = 1;

static void out_send(struct out *o)
{
	memcpy(o->buf, &o->len, 4);
	uint32_t done = 0;
	while (ctl_open && done < o->len) {
		ssize_t n = send(CTL_FD, o->buf + done, o->len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ctl_open = 0; /* the library is gone; keep supervising to the end */
			break;
		}
		done += n;
	}
}

static void send_simple(uint8_t type)
{
	struct out o;
	out_begin(&o, type);
	out_send(&o);
}

static void send_error(int err, const char *stage, const char *fmt, ...)
{
	struct out o;
	char msg[1024] = "";
	out_begin(&o, EV_ERROR);
	out_u32(&o, T_ERRNO, err);
	out_str(&o, T_STAGE, stage);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		out_str(&o, T_MESSAGE, msg);
	}
	out_send(&o);
}

static void send_refused(uint8_t req, int err, const char *msg)
{
	struct out o;
	out_begin(&o, EV_REFUSED);
	out_u32(&o, T_REQUEST, req);
	out_u32(&o, T_ERRNO, err);
	out_str(&o, T_MESSAGE, msg);
	out_send(&o);
}

/* ---- the child ---------------------------------------------------------- */

/* The child's report to the agent: a record of errno + stage, then _exit. */
static int status_w = -1;

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

static void child_apply(const struct msg *m, char **argv, char **envp)
{
	const struct field *f;

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
	if ((f = find(m, T_CAP_BOUNDING))) {
		uint64_t drop = get_u64(f->p);
		for (int cap = 0; cap < 64; cap++)
			if ((drop >> cap) & 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
				child_fail("cap_drop_bounding");
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
		const struct field *fl = find(m, T_SECCOMP_FLAGS);
		if (f->len == 0 || f->len % sizeof(struct sock_filter)) {
			errno = EINVAL;
			child_fail("seccomp_install");
		}
		struct sock_fprog prog = {
			.len = f->len / sizeof(struct sock_filter),
			.filter = (struct sock_filter *)f->p,
		};
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, fl ? get_u32(fl->p) : 0, &prog) < 0)
			child_fail("seccomp_install");
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
	close(park_r);
	if (parse_frame(buf, len, &m, err, sizeof err) < 0) {
		errno = EPROTO;
		child_fail("malformed_frame");
	}
	child_apply(&m, argv, envp);
	_exit(127);
}

/* ---- the agent ----------------------------------------------------------- */

enum state { S_START, S_PARKED, S_PROCEEDED, S_RUNNING, S_DONE };

static struct {
	enum state state;
	pid_t child;
	int status_r;   /* child -> agent reports */
	int park_w;     /* agent -> child wake-up; closed = abort */
	int abort_pending;
	int signals[MAX_SIGNALS];
	int nsignals;
	int err_errno;  /* an error record read from the child */
	char err_stage[64];
	int ready_sent;
} S = {.status_r = -1, .park_w = -1};

static void deliver_or_buffer(int signo)
{
	if (S.state == S_RUNNING) {
		kill(S.child, signo);
	} else if (S.nsignals < MAX_SIGNALS) {
		S.signals[S.nsignals++] = signo;
	}
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

static int do_spawn(const struct msg *m, char ***argv_out, char ***envp_out)
{
	int argc = 0, envc = 0, have_env = 0;
	for (int i = 0; i < m->nfields; i++) {
		argc += m->fields[i].tag == T_ARGV;
		if (m->fields[i].tag == T_ENV)
			envc++, have_env = 1;
	}
	char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
	if (!argv || !envp)
		_exit(1);
	argc = envc = 0;
	for (int i = 0; i < m->nfields; i++) {
		if (m->fields[i].tag == T_ARGV)
			argv[argc++] = dup_str(&m->fields[i]);
		else if (m->fields[i].tag == T_ENV)
			envp[envc++] = dup_str(&m->fields[i]);
	}
	if (!argv[0][0]) {
		send_error(EINVAL, "malformed_frame", "argv[0] is empty");
		return -1;
	}
	extern char **environ;
	*argv_out = argv;
	*envp_out = have_env ? envp : environ;

	const struct field *f;
	uint64_t flags = (f = find(m, T_CLONE_FLAGS)) ? get_u64(f->p) : 0;
	const struct field *target = find(m, T_TARGET_PID);
	if (target) {
		f = find(m, T_JOIN_NS);
		if (enter_namespaces(get_u32(target->p), f ? get_u64(f->p) : 0) < 0)
			return -1;
		flags = 0;
	}

	int status[2], park[2];
	if (pipe2(status, O_CLOEXEC) < 0 || pipe2(park, O_CLOEXEC) < 0) {
		send_error(errno, "pipe2", "pipe2");
		return -1;
	}
	struct clone_args ca = {.flags = flags, .exit_signal = SIGCHLD};
	pid_t pid = syscall(SYS_clone3, &ca, sizeof ca);
	if (pid < 0) {
		int err = errno;
		send_error(err, target ? "fork" : "clone",
			   err == ENOSPC ? "clone: nesting depth or /proc/sys/user/max_*_namespaces exceeded" :
			   err == EPERM ? "clone: creating namespaces needs CAP_SYS_ADMIN (or a user namespace)" :
			   err == EINVAL ? "clone: this kernel does not support a requested namespace" : "clone");
		return -1;
	}
	if (pid == 0) {
		close(status[0]);
		close(park[1]);
		status_w = status[1];
		child_main(park[0], argv, *envp_out);
	}
	close(status[1]);
	close(park[0]);
	S.child = pid;
	S.status_r = status[0];
	S.park_w = park[1];
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
	close(S.park_w);
	S.park_w = -1;
	S.state = S_PROCEEDED;
}

static void do_abort(void)
{
	close(S.park_w);
	S.park_w = -1;
	S.abort_pending = 2; /* fired: the child exits on EOF */
}

/* The child's reports: its pid (then ready), an error record, or EOF (exec happened). */
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
			send_simple(EV_RUNNING);
			for (int i = 0; i < S.nsignals; i++)
				kill(S.child, S.signals[i]);
			S.nsignals = 0;
		}
		return;
	}
	if (!S.ready_sent) {
		uint32_t cpid;
		memcpy(&cpid, rec, 4);
		struct out o;
		out_begin(&o, EV_READY);
		out_u32(&o, T_HOST_PID, S.child);
		out_u32(&o, T_CHILD_PID, cpid);
		out_send(&o);
		S.ready_sent = 1;
		S.state = S_PARKED;
		if (S.abort_pending)
			do_abort();
		return;
	}
	if (n == sizeof rec) {
		memcpy(&S.err_errno, rec, 4);
		rec[63] = 0;
		snprintf(S.err_stage, sizeof S.err_stage, "%s", (char *)rec + 4);
	}
}

static void reap(void)
{
	int st;
	pid_t p = waitpid(S.child, &st, WNOHANG);
	if (p != S.child)
		return;
	while (S.status_r >= 0)
		read_status(); /* the child is gone, so this ends in EOF */
	if (S.err_errno) {
		send_error(S.err_errno, S.err_stage, NULL);
	} else if (S.state != S_RUNNING) {
		if (S.abort_pending)
			send_simple(EV_ABORTED);
		else
			send_error(ECHILD, "checkpoint", "the child died at the checkpoint (%s %d)",
				   WIFSIGNALED(st) ? "signal" : "status",
				   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	} else if (WIFEXITED(st)) {
		struct out o;
		out_begin(&o, EV_EXITED);
		out_u32(&o, T_CODE, WEXITSTATUS(st));
		out_send(&o);
	} else {
		struct out o;
		out_begin(&o, EV_SIGNALED);
		out_u32(&o, T_EV_SIGNO, WTERMSIG(st));
		out_send(&o);
	}
	S.state = S_DONE;
}

/* Closing a unix socket with unread input resets the peer before it reads our last event;
 * so read what is left (without blocking) before exiting. */
static void drain_ctl(void)
{
	char buf[4096];
	while (recv(CTL_FD, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

static void __attribute__((noreturn)) kill_child_and_exit(int code)
{
	drain_ctl();
	if (S.child > 0) {
		kill(S.child, SIGKILL);
		waitpid(S.child, NULL, 0);
	}
	_exit(code);
}

/* Control socket input: a growing buffer cut into frames. */
static uint8_t *inbuf;
static uint32_t inlen, incap;

static void handle_frame(const uint8_t *frame, uint32_t len)
{
	static struct msg m;
	char err[256];
	if (parse_frame(frame, len, &m, err, sizeof err) < 0) {
		send_error(EPROTO, "malformed_frame", "%s", err);
		kill_child_and_exit(2);
	}
	switch (m.type) {
	case REQ_SPAWN:
		send_error(EPROTO, "malformed_frame", "spawn sent twice");
		kill_child_and_exit(2);
	case REQ_PROCEED:
		if (S.state == S_START)
			send_refused(m.type, EAGAIN, "not ready: the child has not reached the checkpoint");
		else if (S.state != S_PARKED || S.abort_pending)
			send_refused(m.type, EALREADY, "already proceeded or aborted");
		else
			do_proceed(frame, len);
		break;
	case REQ_ABORT:
		if (S.state == S_START)
			S.abort_pending = 1;
		else if (S.state == S_PARKED && !S.abort_pending)
			do_abort();
		else if (S.state == S_PARKED)
			send_refused(m.type, EALREADY, "already aborted");
		else
			send_refused(m.type, EBUSY, "running: past the checkpoint, use a signal");
		break;
	case REQ_SIGNAL: {
		uint32_t signo = get_u32(find(&m, T_SIGNO)->p);
		if (signo < 1 || signo >= (uint32_t)NSIG)
			send_refused(m.type, EINVAL, "signal number out of range");
		else
			deliver_or_buffer(signo);
		break;
	}
	}
}

static int read_ctl(void)
{
	if (incap - inlen < 65536) {
		incap = incap ? incap * 2 : 131072;
		inbuf = realloc(inbuf, incap);
		if (!inbuf)
			_exit(1);
	}
	ssize_t n = recv(CTL_FD, inbuf + inlen, incap - inlen, 0);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0)
		return -1;
	inlen += n;
	uint32_t off = 0;
	while (inlen - off >= 4) {
		uint32_t flen = get_u32(inbuf + off);
		if (flen < HDR || flen > MAX_FRAME) {
			send_error(EPROTO, "malformed_frame", "frame length %u out of range", flen);
			kill_child_and_exit(2);
		}
		if (inlen - off < flen)
			break;
		handle_frame(inbuf + off, flen);
		off += flen;
	}
	memmove(inbuf, inbuf + off, inlen - off);
	inlen -= off;
	return 0;
}

/* The first frame must be spawn: read it whole, blocking. */
static int read_spawn(struct msg *m, uint8_t **frame)
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
	*frame = buf;
	return 0;
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
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		send_error(errno, "signalfd", "signalfd");
		return 1;
	}

	static struct msg spawn;
	uint8_t *frame;
	char **argv, **envp;
	if (read_spawn(&spawn, &frame) < 0) {
		drain_ctl();
		return 2;
	}
	if (do_spawn(&spawn, &argv, &envp) < 0)
		return 1;

	while (S.state != S_DONE) {
		struct pollfd p[3] = {
			{.fd = ctl_open ? CTL_FD : -1, .events = POLLIN},
			{.fd = sfd, .events = POLLIN},
			{.fd = S.status_r, .events = POLLIN},
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			kill_child_and_exit(1);
		}
		if (p[2].revents)
			read_status();
		if (p[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGCHLD)
					reap();
				else
					deliver_or_buffer(si.ssi_signo);
				break;
			}
		}
		if (S.state == S_DONE)
			break;
		if (p[0].revents && read_ctl() < 0)
			kill_child_and_exit(0); /* the library is gone before the end */
	}
	return 0;
}
