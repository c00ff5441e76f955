#!/usr/bin/perl
# Lazarus's member spawner and log pump: the one way members are started where the host's perl
# has POSIX, Fcntl, Errno and Time::HiRes (Debian's perl; perl-base alone lacks Time::HiRes).
# src/backends/spawner.ts runs it; the build copies it to dist/backends/; docs/logs.md describes
# what it makes. Where perl cannot run it, src/backends/spawn-node.ts starts members instead.
#
#   perl spawner.pl [ROOM]                the spawner: requests on stdin, replies on stdout
#   perl spawner.pl --pump LOG MAX KEEP   the log pump alone, stdin into LOG (its stdout)
#
# Why Perl (bench/README.md, apply): node forks itself (a process of a hundred MB or more, with
# threads) to start a child, and libuv blocks the spawning thread until the child has exec'd; this
# process is a few MB, its fork is cheap, and it does at once what a shell pipeline did with more
# forks and execs per member. The log pump is a fork of it that runs LazarusPump::main below
# without an exec: no perl to start, link and load per member.
#
# The spawner, per request:
#   - the member's log is opened as Lazarus opens it (O_APPEND|O_CREAT|O_NOFOLLOW|O_NONBLOCK|
#     O_NOCTTY, mode 0640 under the umask, a regular file or refused);
#   - with a pump: a pipe; the pump is forked first, made a session leader (setsid), with an empty
#     environment, the pipe's read end as its stdin and the log as its stdout and stderr, named
#     "lazarus log-pump LOG" in ps; then the supervisor is forked, made a session leader, stdin
#     /dev/null, the pipe's write end as its stdout and stderr, and exec'd. Each keeps only its
#     own ends, so the pump reads until the last writer (the member and whatever it started) is
#     gone, and outlives Lazarus, the supervisor and this process;
#   - without a pump: the supervisor writes straight to the log.
# Each child reports a failed chdir or exec on a close-on-exec status pipe (as libuv does), so a
# reply is sent once it has exec'd.
#
# ROOM: any argument, as long as the longest name a pump takes in ps: Perl can name a process
# ($0) only within the room its arguments took when it started (the spawner has no environment).
#
# Protocol. Requests on stdin, each "LENGTH\n" then LENGTH bytes of NUL-separated fields:
#   id, pump (0|1), log file, max bytes, keep, cwd, file, argc, args..., envc, NAME=VALUE...
# Lines on stdout:
#   "ID PID"                  started (exec'd)
#   "ID L ERRNO-NAME message" the log could not be opened
#   "ID K KIND"               the log is no regular file (directory, FIFO, ...)
#   "ID X ERRNO-NAME message" fork, pipe, chdir or exec failed
#   "E PID STATUS"            a child of this process ended (STATUS: its wait status), so that
#                             whoever started it learns of the exit at once
# It ends when its stdin closes (Lazarus ended); children not yet reaped are then init's.
# Signal dispositions are the defaults in every child (SIGCHLD's handler here is reset by exec, and
# in the pump's fork by hand), so members start with the defaults.
use strict;
use POSIX ();
use Errno ();
use Time::HiRes ();
use Fcntl ();

# ---- The log pump --------------------------------------------------------------------------
# Same records, limits, rotation and signals as src/backends/log-pump.ts (the node pump of the
# fallback; test/backends/log-pump.test.ts runs both on the same cases). Each record is
# "<UTC time, ms> <bytes of one line>\n"; a line longer than the record limit is cut into several
# records; a partial line is written once a newline comes, the limit is reached, input ends, or it
# has waited PARTIAL seconds. Before a record would take the file past MAX, LOG becomes LOG.1
# (.1 -> .2 ... up to .KEEP, the oldest dropped) and a new file is started; KEEP 0 truncates
# instead. It works by names relative to the log's directory (a cell moved to the graveyard
# rotates where it now is; a scrubbed one makes rotation fail over to truncating), never creates
# a directory and never opens through a link.
package LazarusPump;

use constant PARTIAL => 1.0;
use constant STAMP => 25; # "2026-11-26T03:34:00.123Z "

my ($max, $keep, $maxLine, $name, $fh, $size, @out, $outBytes, $pending, $pendingStamp, $deadline);

sub floor { my $x = $_[0]; my $i = int($x); return $i > $x ? $i - 1 : $i; }

sub rotate {
  if ($keep > 0) {
    my $ok = eval {
      for (my $i = $keep - 1; $i >= 1; $i--) { rename("$name.$i", "$name." . ($i + 1)) or $!{ENOENT} or die; }
      rename($name, "$name.1") or die;
      my $flags = Fcntl::O_WRONLY() | Fcntl::O_APPEND() | Fcntl::O_CREAT() | Fcntl::O_EXCL();
      $flags |= Fcntl::O_NOFOLLOW() | Fcntl::O_NONBLOCK() | Fcntl::O_NOCTTY();
      sysopen(my $next, $name, $flags, 0640) or die;
      binmode $next;
      close $fh;
      $fh = $next; $size = 0; 1;
    };
    return if $ok;
  }
  truncate($fh, 0);
  $size = 0;
}

sub flush_out {
  return if $outBytes == 0;
  my $data = join("", @out); @out = (); $outBytes = 0;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite($fh, $data, length($data) - $off, $off);
    if (!defined $n) { next if $!{EAGAIN} || $!{EINTR}; return; } # disk full: drop, keep draining
    $off += $n;
  }
  $size += length $data;
}

sub record {
  my ($stamp, $body) = @_;
  my $rec = "$stamp $body\n";
  if ($size + $outBytes + length($rec) > $max && $size + $outBytes > 0) { flush_out(); rotate(); }
  push @out, $rec; $outBytes += length $rec;
}

sub stamp {
  my $t = Time::HiRes::time(); my @g = gmtime(int $t);
  my $ms = int(($t - int($t)) * 1000);
  return sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", $g[5] + 1900, $g[4] + 1, $g[3], $g[2], $g[1], $g[0], $ms);
}

sub emit_pending {
  $deadline = undef;
  record($pendingStamp, $pending) if defined $pending && length $pending;
  $pending = undef;
}

sub take {
  my ($chunk) = @_;
  my $now = stamp();
  my $s = (stat $fh)[7]; $size = $s if defined $s; # another writer (an earlier pump) counts too
  my $start = 0;
  while ($start < length $chunk) {
    my $nl = index($chunk, "\n", $start);
    my $end = $nl < 0 ? length $chunk : $nl;
    my $piece = substr($chunk, $start, $end - $start);
    if (defined $pending) { $piece = $pending . $piece; $pending = undef; $deadline = undef; }
    else { $pendingStamp = $now; }
    while (length($piece) > $maxLine) { record($pendingStamp, substr($piece, 0, $maxLine)); $piece = substr($piece, $maxLine); }
    if ($nl < 0) { $pending = $piece; last; }
    record($pendingStamp, $piece);
    $start = $nl + 1;
  }
  flush_out();
  $deadline = Time::HiRes::time() + PARTIAL if defined $pending && !defined $deadline;
}

# Ends the process at once (no global destruction: in the spawner's fork, the handles it closed
# would be closed again, warning into the log).
sub finish { emit_pending(); flush_out(); POSIX::_exit(0); }

# Pump stdin into stdout (the log FILE, opened by whoever started the pump) until input ends.
sub main {
  my ($file, $maxArg, $keepArg) = @_;
  $max = ($maxArg || 0) + 0; $max = 10485760 unless $max > 0; $max = 4096 if $max < 4096;
  $keep = floor(($keepArg || 0) + 0); $keep = 0 if $keep < 0; $keep = 100 if $keep > 100;
  $maxLine = floor($max / 2) - STAMP - 1; $maxLine = 16384 if $maxLine > 16384; $maxLine = 256 if $maxLine < 256;
  ($name, $fh, $size, $outBytes) = ("log", \*STDOUT, 0, 0);
  @out = (); ($pending, $pendingStamp, $deadline) = (undef, "", undef);
  binmode STDIN; binmode STDOUT;
  if (defined $file && length $file) {
    my $i = rindex($file, "/");
    my $dir = $i > 0 ? substr($file, 0, $i) : ($i == 0 ? "/" : ".");
    if (chdir $dir) { $name = substr($file, $i + 1); $size = (stat STDOUT)[7] || 0; }
  }
  # Whatever a signal meant for the member's group or terminal would do, the pump keeps draining
  # until input ends; SIGTERM flushes and ends.
  $SIG{HUP} = "IGNORE"; $SIG{INT} = "IGNORE"; $SIG{PIPE} = "IGNORE"; $SIG{CHLD} = "DEFAULT";
  $SIG{TERM} = \&finish;
  my $rin = ""; vec($rin, fileno(STDIN), 1) = 1;
  while (1) {
    my $wait = defined $deadline ? $deadline - Time::HiRes::time() : undef;
    $wait = 0 if defined $wait && $wait < 0;
    my $n = select(my $rout = $rin, undef, undef, $wait);
    if ($n < 0) { next if $!{EINTR}; last; }
    if ($n == 0) { emit_pending(); flush_out(); next; }
    my $r = sysread(STDIN, my $chunk, 65536);
    if (!defined $r) { next if $!{EINTR} || $!{EAGAIN}; last; }
    last if $r == 0;
    take($chunk);
  }
  finish();
}

# ---- The spawner ---------------------------------------------------------------------------
package LazarusSpawner;

use Fcntl qw(O_WRONLY O_RDONLY O_APPEND O_CREAT O_NOFOLLOW O_NONBLOCK O_NOCTTY F_GETFL F_SETFL);

my @ERRNOS = qw(ENOENT ELOOP ENXIO EACCES EPERM ENOTDIR EISDIR EMFILE ENFILE ENOSPC EROFS ENOEXEC
  E2BIG ENOMEM EAGAIN ENAMETOOLONG EDQUOT ETXTBSY);
sub errname {
  my $n = $_[0] + 0;
  for my $k (@ERRNOS) { my $v = eval "POSIX::$k()"; return $k if defined $v && $v == $n; }
  return "E$n";
}

# A reply line, written whole (a signal may interrupt the write); a Lazarus gone ends this process.
sub reply {
  my ($s) = @_;
  my $off = 0;
  while ($off < length $s) {
    my $n = syswrite(STDOUT, $s, length($s) - $off, $off);
    if (!defined $n) { next if $!{EINTR} || $!{EAGAIN}; POSIX::_exit(0); }
    $off += $n;
  }
}

# The SIGCHLD wake-up pipe, and requests read but not yet served: no child may keep either (the
# request and reply pipes themselves are 0 and 1, which every child replaces).
my ($wakeR, $wakeW);
my $in = "";

# Fork a child in a session of its own that sets itself up with $setup, then does $then with its
# status pipe (close-on-exec, like everything Perl opens) and a $fail that reports errno on it and
# exits; returns (pid, the status pipe's read end) or (undef, errno).
sub forked {
  my ($setup, $then) = @_;
  pipe(my $sr, my $sw) or return (undef, $!);
  my $pid = fork;
  if (!defined $pid) { my $e = $!; close $sr; close $sw; return (undef, $e); }
  if ($pid == 0) {
    close $sr;
    my $fail = sub { my $e = ($! + 0) || 1; syswrite($sw, "$e"); POSIX::_exit(127); };
    POSIX::setsid();
    $setup->() or $fail->();
    $then->($sw, $fail);
    POSIX::_exit(0);
  }
  close $sw;
  return ($pid, $sr);
}

# A child that execs @cmd with the environment %$env.
sub launch {
  my ($setup, $env, @cmd) = @_;
  return forked($setup, sub { my (undef, $fail) = @_; %ENV = %$env; exec { $cmd[0] } @cmd; $fail->(); });
}

# A child that runs $run in this process's image (no exec), having closed @own (this process's
# handles it must not keep); it closes its status pipe once set up.
sub fork_run {
  my ($setup, $run, @own) = @_;
  return forked($setup, sub {
    my ($sw) = @_;
    # Nothing of this process's stays open in the pump (Lazarus's request and reply pipes, the
    # wake-up pipe, the member's write end, a log): it would hold them for as long as the member
    # writes. Handles are closed by Perl's close (closed behind Perl's back, a number would stay
    # counted by PerlIO, and a log rotated onto it would never be closed); any other pipe or
    # socket (none expected) by number. What stays: 0, 1, 2 and the read-only files of modules
    # with a __DATA__/__END__.
    close $_ for grep { defined } @own, $wakeR, $wakeW;
    my $keep = fileno $sw;
    if (opendir(my $d, "/proc/self/fd")) {
      my @fds = grep { /^\d+$/ && $_ > 2 && $_ != $keep } readdir $d;
      closedir $d;
      for my $fd (@fds) {
        my $t = readlink("/proc/self/fd/$fd");
        POSIX::close($fd) if defined $t && $t =~ /^(?:pipe|socket|anon_inode):/;
      }
    }
    %ENV = ();
    $SIG{CHLD} = "DEFAULT";
    close $sw;
    $run->();
  });
}

# What a child wrote on its status pipe before exec'ing: "" once it has exec'd, else its errno.
sub status {
  my ($sr) = @_;
  my $buf = "";
  while (1) {
    my $n = sysread($sr, $buf, 64, length $buf);
    last if defined $n && $n == 0;
    next if !defined $n && $!{EINTR};
    last if !defined $n;
  }
  close $sr;
  return $buf;
}

# Report every child that has ended.
sub reap { while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { reply("E $pid $?\n"); } }

# One request: start the member (and its pump), reply.
sub start {
  my ($buf) = @_;
  my @f = split /\0/, $buf, -1;
  my ($id, $pump, $log, $max, $keep, $cwd, $file, $argc) = splice(@f, 0, 8);
  my @args = splice(@f, 0, $argc);
  my $envc = shift @f; my %env;
  for my $kv (splice(@f, 0, $envc)) { my $i = index($kv, "="); $env{substr($kv, 0, $i)} = substr($kv, $i + 1) if $i > 0; }
  my $lfh;
  my $flags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  if (!sysopen($lfh, $log, $flags, 0640)) { reply("$id L " . errname($!) . " $!\n"); return; }
  if (!-f $lfh) {
    my $kind = -d _ ? "directory" : -p _ ? "FIFO" : -S _ ? "socket" : (-c _ || -b _) ? "device" : "special file";
    close $lfh; reply("$id K $kind\n"); return;
  }
  my $fl = fcntl($lfh, F_GETFL, 0); fcntl($lfh, F_SETFL, $fl & ~O_NONBLOCK) if defined $fl;
  my $lfd = fileno $lfh;
  my ($out, $pw) = ($lfd);
  if ($pump eq "1") {
    my $pr;
    if (!pipe($pr, $pw)) { reply("$id X " . errname($!) . " pipe: $!\n"); close $lfh; return; }
    my $rfd = fileno $pr;
    # The pump first, before the member: a member never writes into a pipe nobody reads.
    my $fds = sub { defined POSIX::dup2($rfd, 0) && defined POSIX::dup2($lfd, 1) && defined POSIX::dup2($lfd, 2) };
    my ($ppid, $pst) = fork_run($fds, sub {
      $0 = "lazarus log-pump $log";
      # This member's request (its environment) is not the pump's to keep.
      %env = (); @args = (); @f = (); $buf = ""; $in = "";
      LazarusPump::main($log, $max, $keep);
    }, $lfh, $pr, $pw);
    close $pr;
    my $pe = defined $ppid ? status($pst) : ($pst + 0);
    if (!defined $ppid || length $pe) {
      $! = $pe + 0; reply("$id X " . errname($pe) . " log pump: $!\n"); close $pw; close $lfh; return;
    }
    $out = fileno $pw;
  }
  my ($pid, $st) = launch(sub {
    my $null = POSIX::open("/dev/null", O_RDONLY);
    defined $null && defined POSIX::dup2($null, 0) && ($null == 0 || POSIX::close($null))
      && defined POSIX::dup2($out, 1) && defined POSIX::dup2($out, 2) && chdir $cwd;
  }, \%env, $file, @args);
  close $pw if $pw; close $lfh;
  my $e = defined $pid ? status($st) : ($st + 0);
  if (!defined $pid || length $e) { $! = $e + 0; reply("$id X " . errname($e) . " $!\n"); return; }
  reply("$id $pid\n");
}

# The next whole request taken off the front of $$in, or undef (none yet); dies on a bad header.
sub next_request {
  my ($in) = @_;
  my $nl = index($$in, "\n");
  return undef if $nl < 0;
  my $len = substr($$in, 0, $nl);
  die "bad request header\n" unless $len =~ /^\d+$/ && $len > 0;
  return undef if length($$in) < $nl + 1 + $len;
  my $req = substr($$in, $nl + 1, $len);
  substr($$in, 0, $nl + 1 + $len) = "";
  return $req;
}

# Serve requests until stdin closes. A child's end wakes the loop (SIGCHLD writes to a pipe the
# loop selects on); the timeout only covers a signal that came between the loop's check and its
# select.
sub main {
  $0 = "lazarus spawner";
  binmode STDIN; binmode STDOUT;
  pipe($wakeR, $wakeW) or die "pipe: $!\n";
  for my $h ($wakeR, $wakeW) { my $fl = fcntl($h, F_GETFL, 0); fcntl($h, F_SETFL, $fl | O_NONBLOCK); }
  $SIG{CHLD} = sub { syswrite($wakeW, "c"); };
  my $rin = ""; vec($rin, fileno(STDIN), 1) = 1; vec($rin, fileno($wakeR), 1) = 1;
  while (1) {
    reap();
    my $n = select(my $rout = $rin, undef, undef, 2);
    if ($n < 0) { next if $!{EINTR}; last; }
    next if $n == 0;
    if (vec($rout, fileno($wakeR), 1)) { 1 while sysread($wakeR, my $drop, 512); }
    next unless vec($rout, fileno(STDIN), 1);
    my $r = sysread(STDIN, $in, 65536, length $in);
    if (!defined $r) { next if $!{EINTR} || $!{EAGAIN}; last; }
    last if $r == 0;
    while (defined(my $req = eval { next_request(\$in) })) { start($req); }
    last if $@;
  }
  reap();
}

package main;

if (@ARGV && $ARGV[0] eq "--pump") { shift @ARGV; LazarusPump::main(@ARGV); }
LazarusSpawner::main();
exit 0;
