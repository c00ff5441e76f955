// The egress bench's reference relay: the least any relay can do between a client and a server on
// this host, one hop, no policy, no protocol. It accepts on 127.0.0.1:LISTEN_PORT, connects each
// connection to 127.0.0.1:TARGET_PORT, and moves each direction socket -> pipe -> socket with
// splice(2) (no copy into the process), in one epoll loop, edge-triggered. Prints its port, then runs
// until killed. Compiled by bench/egress.ts with the host's cc (the bench's, not the product's).
//   cc -O2 -o splice-relay splice-relay.c && ./splice-relay TARGET_PORT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PIPE_BYTES (1 << 20)

struct dir { int src, dst, r, w; size_t held; int eof, shut; };
struct tun { struct dir d[2]; int a, b, dead; struct tun *next; };

static void nb(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Move what can move now; -1 when the direction failed.
static int pump(struct dir *d) {
  for (;;) {
    int moved = 0;
    if (d->held) {
      ssize_t m = splice(d->r, NULL, d->dst, NULL, d->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0 && errno != EAGAIN) return -1;
      if (m > 0) { d->held -= m; moved = 1; }
    }
    if (!d->eof && d->held < PIPE_BYTES) {
      ssize_t m = splice(d->src, NULL, d->w, NULL, PIPE_BYTES - d->held, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0 && errno != EAGAIN) return -1;
      if (m == 0) d->eof = 1;
      if (m > 0) { d->held += m; moved = 1; }
    }
    if (!moved) break;
  }
  if (d->eof && !d->held && !d->shut) { shutdown(d->dst, SHUT_WR); d->shut = 1; }
  return 0;
}

// Closed now, freed after the batch of events (a later event of the same batch may name it).
static struct tun *ended;
static void finish(int ep, struct tun *t) {
  t->dead = 1;
  t->next = ended;
  ended = t;
  epoll_ctl(ep, EPOLL_CTL_DEL, t->a, NULL);
  epoll_ctl(ep, EPOLL_CTL_DEL, t->b, NULL);
  close(t->a); close(t->b);
  for (int i = 0; i < 2; i++) { close(t->d[i].r); close(t->d[i].w); }
}

static struct tun *open_tunnel(int ep, int client, int port) {
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  int up = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (up < 0 || connect(up, (struct sockaddr *)&to, sizeof to) < 0) { close(client); if (up >= 0) close(up); return NULL; }
  setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  nb(client); nb(up);
  struct tun *t = calloc(1, sizeof *t);
  t->a = client; t->b = up;
  for (int i = 0; i < 2; i++) {
    int p[2];
    if (pipe2(p, O_NONBLOCK) < 0) exit(1);
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES);
    t->d[i] = (struct dir){ .src = i ? up : client, .dst = i ? client : up, .r = p[0], .w = p[1] };
  }
  struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = t };
  epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev);
  epoll_ctl(ep, EPOLL_CTL_ADD, up, &ev);
  return t;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: splice-relay TARGET_PORT\n"); return 2; }
  int port = atoi(argv[1]), one = 1;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in at = { .sin_family = AF_INET };
  inet_pton(AF_INET, "127.0.0.1", &at.sin_addr);
  socklen_t len = sizeof at;
  if (bind(ls, (struct sockaddr *)&at, sizeof at) < 0 || listen(ls, 511) < 0) { perror("listen"); return 1; }
  getsockname(ls, (struct sockaddr *)&at, &len);
  printf("%d\n", ntohs(at.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      struct tun *t = evs[i].data.ptr;
      if (!t) {
        int c = accept(ls, NULL, NULL);
        if (c >= 0 && (t = open_tunnel(ep, c, port)) == NULL) continue;
        if (!t) continue;
      }
      if (t->dead) continue;
      if (pump(&t->d[0]) < 0 || pump(&t->d[1]) < 0 || (t->d[0].shut && t->d[1].shut)) finish(ep, t);
    }
    while (ended) {
      struct tun *t = ended;
      ended = t->next;
      free(t);
    }
  }
}
