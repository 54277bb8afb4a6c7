// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "tracker/session.h"

#define SESSION_MAGIC "dirtytrack-session 2"

const char *session_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("DIRTYTRACK_STATE_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		snprintf(dir, sizeof(dir), "%s", env);
	else if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/run/dirtytrack");
	else if (xdg && *xdg)
		snprintf(dir, sizeof(dir), "%s/dirtytrack", xdg);
	else
		snprintf(dir, sizeof(dir), "/tmp/dirtytrack-%u", (unsigned)geteuid());
	return dir;
}

static void session_path(pid_t pid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%d.session", session_dir(), pid);
}

uint64_t session_mm_id(const struct proc_stat *st)
{
	/* an exiting process has shed its mm: no layout to compare */
	if (!st->start_code && !st->start_stack && !st->arg_start)
		return 0;
	/* FNV-1a over the layout exec rebuilds (new stack, args, code) */
	uint64_t v[] = { st->start_code, st->end_code, st->start_stack, st->arg_start,
			 st->env_start, st->start_brk };
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p = (const unsigned char *)v;

	for (size_t i = 0; i < sizeof(v); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

int session_load(pid_t pid, struct session *s)
{
	char path[PATH_MAX], *buf, *line, *next;

	memset(s, 0, sizeof(*s));
	session_path(pid, path, sizeof(path));
	buf = read_file(path, NULL);
	if (!buf)
		return errno == ENOENT ? 0 : dt_err_sys(0, "%s", path);
	if (strncmp(buf, SESSION_MAGIC "\n", strlen(SESSION_MAGIC) + 1)) {
		free(buf);
		return 0;	/* not ours or from another version: ignore */
	}
	for (line = buf; *line; line = next) {
		unsigned long long a, b;
		int e;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		if (sscanf(line, "pid %d", &s->pid) == 1 ||
		    sscanf(line, "start_time %llu", &s->start_time) == 1 ||
		    sscanf(line, "mm_id %" SCNu64, &s->mm_id) == 1 ||
		    sscanf(line, "holder_pid %d", &s->holder_pid) == 1 ||
		    sscanf(line, "holder_start %llu", &s->holder_start) == 1 ||
		    sscanf(line, "uffd_ino %" SCNu64, &s->uffd_ino) == 1 ||
		    sscanf(line, "generation %" SCNu64, &s->generation) == 1 ||
		    sscanf(line, "started %" SCNu64, &s->started_unix) == 1 ||
		    sscanf(line, "pending %d", &s->pending) == 1 ||
		    sscanf(line, "last_dump %63s", s->last_dump) == 1)
			continue;
		if (sscanf(line, "skip %llx %llx %d", &a, &b, &e) == 3 &&
		    s->nskips < SESSION_MAX_SKIPS)
			s->skips[s->nskips++] = (struct session_skip){ a, b, e };
		else if (sscanf(line, "cow %llx %llx", &a, &b) == 2 && range_set_add(&s->cow, a, b))
			die_oom();
		else if (sscanf(line, "ours %llx %llx", &a, &b) == 2 && range_set_add(&s->ours, a, b))
			die_oom();
	}
	free(buf);
	return s->pid == pid ? 1 : 0;
}

/*
 * Per user, 0700, ours: anyone can pre-create /tmp/dirtytrack-UID, and a
 * directory that is not ours is refused with the way out.
 */
static int ensure_dir(void)
{
	const char *dir = session_dir();
	struct passwd *pw;
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST)
		return dt_err_sys(0, "creating state directory %s (set DIRTYTRACK_STATE_DIR to "
				  "use another)", dir);
	if (lstat(dir, &st))
		return dt_err_sys(0, "state directory %s", dir);
	if (!S_ISDIR(st.st_mode))
		return dt_err(DT_EXIT_ERROR, "state directory %s is %s, not a directory: set "
			      "DIRTYTRACK_STATE_DIR to a directory of your own", dir,
			      S_ISLNK(st.st_mode) ? "a symlink" : "a file");
	if (st.st_uid != geteuid()) {
		pw = getpwuid(st.st_uid);
		return dt_err(DT_EXIT_ERROR, "state directory %s belongs to uid %u (%s), not to us "
			      "(uid %u): set DIRTYTRACK_STATE_DIR to a directory of your own", dir,
			      (unsigned)st.st_uid, pw ? pw->pw_name : "unknown", (unsigned)geteuid());
	}
	if ((st.st_mode & 0077) && chmod(dir, 0700))
		return dt_err_sys(0, "making state directory %s private", dir);
	return 0;
}

static int lock_file(pid_t pid, bool wait);

int session_lock(pid_t pid)
{
	return lock_file(pid, true);
}

int session_trylock(pid_t pid)
{
	return lock_file(pid, false);
}

static int lock_file(pid_t pid, bool wait)
{
	char path[PATH_MAX];
	int fd;

	if (ensure_dir())
		return -1;
	snprintf(path, sizeof(path), "%s/%d.lock", session_dir(), pid);
	for (;;) {
		struct stat held, now;

		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return dt_err_sys(0, "opening %s", path);
		while (flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) {
			if (errno != EINTR) {
				dt_err_sys(0, "locking %s", path);
				close(fd);
				return -1;
			}
		}
		/* session_gc may have removed the file we waited on: lock the one there now */
		if (fstat(fd, &held) == 0 && stat(path, &now) == 0 && held.st_ino == now.st_ino)
			return fd;
		close(fd);
	}
}

static bool pid_gone(const char *name)
{
	char proc[32];
	int pid;
	char *dot = strchr(name, '.');

	if (!dot || dot == name || (strcmp(dot, ".lock") && strcmp(dot, ".session")))
		return false;
	if (sscanf(name, "%d", &pid) != 1 || pid <= 0)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%d", pid);
	return access(proc, F_OK) != 0 && errno == ENOENT;
}

void session_gc(void)
{
	DIR *d = opendir(session_dir());
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		int fd;

		if (!pid_gone(de->d_name))
			continue;
		if (strstr(de->d_name, ".session")) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		/* a lock nobody holds: taken first, so no waiter is left on a removed file */
		fd = openat(dirfd(d), de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}

void session_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int session_save(const struct session *s)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	FILE *f;
	int fd;

	if (ensure_dir())
		return -1;
	session_path(s->pid, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return dt_err_sys(0, "creating %s", tmp);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return dt_err_sys(0, "%s", tmp);
	}
	fprintf(f, SESSION_MAGIC "\npid %d\nstart_time %llu\nmm_id %" PRIu64 "\nholder_pid %d\n"
		"holder_start %llu\nuffd_ino %" PRIu64 "\ngeneration %" PRIu64 "\nstarted %" PRIu64
		"\n", s->pid, s->start_time, s->mm_id, s->holder_pid, s->holder_start, s->uffd_ino,
		s->generation, s->started_unix);
	if (s->pending)
		fprintf(f, "pending %d\n", s->pending);
	if (s->last_dump[0])
		fprintf(f, "last_dump %s\n", s->last_dump);
	for (int i = 0; i < s->nskips; i++)
		fprintf(f, "skip %llx %llx %d\n", (unsigned long long)s->skips[i].start,
			(unsigned long long)s->skips[i].end, s->skips[i].err);
	range_set_for_each(r, &s->cow)
		fprintf(f, "cow %llx %llx\n", (unsigned long long)r->start,
			(unsigned long long)r->end);
	range_set_for_each(r, &s->ours)
		fprintf(f, "ours %llx %llx\n", (unsigned long long)r->start,
			(unsigned long long)r->end);
	/* no fsync: tracking itself does not outlive a reboot, nor need its state */
	if (fflush(f) || ferror(f)) {
		dt_err_sys(0, "writing %s", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path)) {
		dt_err_sys(0, "renaming %s", tmp);
		unlink(tmp);
		return -1;
	}
	return 0;
}

void session_free(struct session *s)
{
	range_set_free(&s->cow);
	range_set_free(&s->ours);
}

void session_remove(pid_t pid)
{
	char path[PATH_MAX];

	session_path(pid, path, sizeof(path));
	unlink(path);
}
