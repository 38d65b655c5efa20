/*
 * A power-loss recorder for tests/power_loss.rs, loaded into the spoor server with
 * LD_PRELOAD. A SIGKILL keeps everything the server wrote (the page cache survives the
 * process); a power cut keeps only what was synced. This shim journals, for every file under
 * $POWERLOSS_DIR, what each write replaced and what it wrote, and when each file (and each
 * directory's entries) was last synced, so that after a SIGKILL the test can turn the files
 * back into a state a power cut could have left: every synced write kept, and any subset of
 * the unsynced ones lost, kept or torn.
 *
 * The journal ($POWERLOSS_JOURNAL) is a sequence of records, each
 *   kind (u8) | path length (u32) | path | a (u64) | b (u64) | data length (u64) | data
 * little-endian, numbered from 0 in the order written:
 *   'W' a write:      a = offset, b = the file's size before it; data = the length of
 *                     the bytes it replaced (u64, those below the old size), those bytes,
 *                     then the bytes written.
 *   'T' a truncation: a = new size, b = old size; data = the bytes cut off (if it shrank).
 *   'S' a file sync:  a = the number of the first record written after the sync began
 *                     (records before it are durable for this path).
 *   'D' a directory sync: the same, for the entries (created and removed files) of a dir.
 *   'C' a file (a = 0) or directory (a = 1) created (it did not exist).
 *   'U' a file removed: data = the path of a hard link kept to its contents.
 * Every record is written whole, in the order the operations took effect, under one lock
 * that is held across each write, so the journal's order is the files' order.
 *
 * $POWERLOSS_SYNC_DELAY_US makes every file sync that much slower.
 *
 * Only the calls Rust's standard library makes are recorded (open64, pwrite64, write,
 * writev, ftruncate64, fsync, fdatasync, unlink, mkdir, close); a shared writable mapping of a
 * tracked file, which could not be recorded, aborts the server.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static int (*real_open64)(const char *, int, ...);
static int (*real_open)(const char *, int, ...);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_close)(int);
static int (*real_mkdir)(const char *, mode_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *dir;        /* the tracked prefix, or NULL: pass everything through */
static size_t dir_len;
static int journal = -1;
static uint64_t records; /* records written so far */
static uint64_t unlinks; /* to name the kept links */
static char *paths[MAX_FD];
static useconds_t sync_delay; /* $POWERLOSS_SYNC_DELAY_US: a slower disk */

__attribute__((constructor)) static void init(void) {
  /* The libc function each interposed one passes on to. */
#define REAL(name) real_##name = dlsym(RTLD_NEXT, #name)
  REAL(open64), REAL(open), REAL(pwrite64), REAL(write), REAL(ftruncate64), REAL(fsync);
  REAL(fdatasync), REAL(unlink), REAL(close), REAL(mkdir), REAL(writev), REAL(mmap64);
#undef REAL
  const char *d = getenv("POWERLOSS_DIR");
  const char *j = getenv("POWERLOSS_JOURNAL");
  if (!d || !j)
    return;
  journal = real_open64(j, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (journal < 0) {
    perror("powerloss: opening the journal");
    abort();
  }
  dir = strdup(d);
  dir_len = strlen(dir);
  const char *delay = getenv("POWERLOSS_SYNC_DELAY_US");
  sync_delay = delay ? (useconds_t)atoi(delay) : 0;
}

static int tracked(const char *path) {
  return dir && path && strncmp(path, dir, dir_len) == 0 &&
         (path[dir_len] == '/' || path[dir_len] == 0);
}

static void put(const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = real_write(journal, c, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      perror("powerloss: writing the journal");
      abort();
    }
    c += w;
    n -= (size_t)w;
  }
}

/* One record; the caller holds the lock. Data comes in up to three pieces. */
static void record(char kind, const char *path, uint64_t a, uint64_t b, const void *d1,
                   uint64_t n1, const void *d2, uint64_t n2, const void *d3, uint64_t n3) {
  uint32_t plen = (uint32_t)strlen(path);
  uint64_t dlen = n1 + n2 + n3;
  put(&kind, 1);
  put(&plen, 4);
  put(path, plen);
  put(&a, 8);
  put(&b, 8);
  put(&dlen, 8);
  if (n1)
    put(d1, n1);
  if (n2)
    put(d2, n2);
  if (n3)
    put(d3, n3);
  records++;
}

/* The bytes of `path` in [off, off + n) that exist, into a new buffer; their count in *got
 * and the file's size in *size. */
static char *old_bytes(const char *path, uint64_t off, uint64_t n, uint64_t *got,
                       uint64_t *size) {
  *got = 0;
  *size = 0;
  int fd = real_open64(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) == 0)
    *size = (uint64_t)st.st_size;
  uint64_t want = off < *size ? (*size - off < n ? *size - off : n) : 0;
  char *buf = want ? malloc(want) : NULL;
  while (*got < want) {
    ssize_t r = pread(fd, buf + *got, want - *got, (off_t)(off + *got));
    if (r <= 0)
      break;
    *got += (uint64_t)r;
  }
  real_close(fd);
  return buf;
}

static void remember(int fd, const char *path) {
  if (fd >= 0 && fd < MAX_FD) {
    free(paths[fd]);
    paths[fd] = tracked(path) ? realpath(path, NULL) : NULL;
  }
}

static const char *path_of(int fd) {
  return fd >= 0 && fd < MAX_FD ? paths[fd] : NULL;
}

static int do_open(int (*real)(const char *, int, ...), const char *path, int flags,
                   mode_t mode) {
  if (!tracked(path))
    return real(path, flags, mode);
  pthread_mutex_lock(&lock);
  int existed = access(path, F_OK) == 0;
  int fd = real(path, flags, mode);
  remember(fd, path);
  if (fd >= 0 && (flags & O_CREAT) && !existed && path_of(fd))
    record('C', path_of(fd), 0, 0, NULL, 0, NULL, 0, NULL, 0);
  pthread_mutex_unlock(&lock);
  return fd;
}

/* open64 and open alike: the mode is there only when a file may be created. */
#define OPEN(name, real)                                                                   \
  int name(const char *path, int flags, ...) {                                             \
    mode_t mode = 0;                                                                       \
    if (flags & (O_CREAT | O_TMPFILE)) {                                                   \
      va_list ap;                                                                          \
      va_start(ap, flags);                                                                 \
      mode = va_arg(ap, mode_t);                                                           \
      va_end(ap);                                                                          \
    }                                                                                      \
    return do_open(real, path, flags, mode);                                               \
  }
OPEN(open64, real_open64)
OPEN(open, real_open)

static ssize_t do_write(int fd, const void *buf, size_t n, int64_t at) {
  const char *path = path_of(fd);
  if (!path)
    return at < 0 ? real_write(fd, buf, n) : real_pwrite64(fd, buf, n, (off_t)at);
  pthread_mutex_lock(&lock);
  uint64_t off = at < 0 ? (uint64_t)lseek(fd, 0, SEEK_CUR) : (uint64_t)at;
  uint64_t got, size;
  char *old = old_bytes(path, off, n, &got, &size);
  if (at < 0 && (fcntl(fd, F_GETFL) & O_APPEND))
    off = size;
  ssize_t w = at < 0 ? real_write(fd, buf, n) : real_pwrite64(fd, buf, n, (off_t)at);
  if (w > 0)
    record('W', path, off, size, &got, 8, old, got, buf, (uint64_t)w);
  pthread_mutex_unlock(&lock);
  free(old);
  return w;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t at) {
  return do_write(fd, buf, n, at);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at) {
  return do_write(fd, buf, n, at);
}

ssize_t write(int fd, const void *buf, size_t n) { return do_write(fd, buf, n, -1); }

ssize_t writev(int fd, const struct iovec *iov, int count) {
  if (!path_of(fd))
    return real_writev(fd, iov, count);
  size_t n = 0;
  for (int i = 0; i < count; i++)
    n += iov[i].iov_len;
  char *buf = malloc(n ? n : 1);
  size_t at = 0;
  for (int i = 0; i < count; i++) {
    memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  ssize_t w = do_write(fd, buf, n, -1);
  free(buf);
  return w;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (path_of(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED)) {
    fprintf(stderr, "powerloss: a shared writable mapping of %s cannot be recorded\n",
            path_of(fd));
    abort();
  }
  return real_mmap64(addr, len, prot, flags, fd, off);
}

int ftruncate64(int fd, off_t len) {
  const char *path = path_of(fd);
  if (!path)
    return real_ftruncate64(fd, len);
  pthread_mutex_lock(&lock);
  uint64_t got, size;
  char *old = old_bytes(path, (uint64_t)len, UINT64_MAX / 2, &got, &size);
  int r = real_ftruncate64(fd, len);
  if (r == 0)
    record('T', path, (uint64_t)len, size, old, got, NULL, 0, NULL, 0);
  pthread_mutex_unlock(&lock);
  free(old);
  return r;
}

int ftruncate(int fd, off_t len) { return ftruncate64(fd, len); }

static int do_sync(int fd, int (*real)(int)) {
  const char *path = path_of(fd);
  if (!path)
    return real(fd);
  pthread_mutex_lock(&lock);
  uint64_t from = records;
  struct stat st;
  char kind = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) ? 'D' : 'S';
  pthread_mutex_unlock(&lock);
  /* A slow disk's sync: the server's writes stay unsynced longer, so a kill is likely to
   * find some (on this machine's disk a sync takes well under a millisecond). */
  if (sync_delay && kind == 'S')
    usleep(sync_delay);
  int r = real(fd);
  if (r == 0) {
    pthread_mutex_lock(&lock);
    record(kind, path, from, 0, NULL, 0, NULL, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
  }
  return r;
}

int fsync(int fd) { return do_sync(fd, real_fsync); }

int fdatasync(int fd) { return do_sync(fd, real_fdatasync); }

int unlink(const char *path) {
  if (!tracked(path))
    return real_unlink(path);
  pthread_mutex_lock(&lock);
  char *full = realpath(path, NULL);
  char kept[4096] = {0};
  if (full) {
    snprintf(kept, sizeof kept, "%s.powerloss-kept-%llu", getenv("POWERLOSS_JOURNAL"),
             (unsigned long long)unlinks++);
    if (link(full, kept) != 0)
      kept[0] = 0;
  }
  int r = real_unlink(path);
  if (r == 0 && full && kept[0])
    record('U', full, 0, 0, kept, strlen(kept), NULL, 0, NULL, 0);
  pthread_mutex_unlock(&lock);
  free(full);
  return r;
}

int close(int fd) {
  if (fd >= 0 && fd < MAX_FD && paths[fd]) {
    pthread_mutex_lock(&lock);
    free(paths[fd]);
    paths[fd] = NULL;
    pthread_mutex_unlock(&lock);
  }
  return real_close(fd);
}

int mkdir(const char *path, mode_t mode) {
  if (!tracked(path))
    return real_mkdir(path, mode);
  pthread_mutex_lock(&lock);
  int r = real_mkdir(path, mode);
  char *full = r == 0 ? realpath(path, NULL) : NULL;
  if (full)
    record('C', full, 1, 0, NULL, 0, NULL, 0, NULL, 0);
  pthread_mutex_unlock(&lock);
  free(full);
  return r;
}
