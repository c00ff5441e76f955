// A small Perl process that starts an apply's members for it (spawn.ts, where the host has perl).
//
// Why: node forks itself to start a child (a process of a hundred MB or more, with threads), and
// libuv blocks the spawning thread until the child has exec'd. Starting a thousand members that
// way cost more CPU than everything else an apply does (bench/README.md, apply). This process is a
// few MB: its fork is cheap, and it does at once what the supervisor's shell did with three more
// forks and three more execs per member (a pipeline, a background job, setsid(1), env -i):
//
//   - the member's log is opened here as Lazarus opens it (O_APPEND|O_CREAT|O_NOFOLLOW|O_NONBLOCK|
//     O_NOCTTY, mode 0640 under the umask, a regular file or refused);
//   - with a pump: a pipe; the pump is forked first, made a session leader (setsid), with an empty
//     environment, the pipe's read end as its stdin and the log as its stdout and stderr; then the
//     supervisor is forked, made a session leader, with the pipe's write end as its stdout and
//     stderr. Each keeps only its own ends (everything Perl opens is close-on-exec), so the pump
//     reads until the last writer (the member and whatever it started) is gone, and outlives
//     Lazarus, the supervisor and this process;
//   - without a pump: the supervisor writes straight to the log.
//
// Each child reports a failed chdir or exec through a close-on-exec pipe (as libuv does), so a
// reply is sent once both have exec'd: "ID PID\n"; else "ID L ERRNO-NAME message\n" (the log could not
// be opened), "ID K KIND\n" (the log is no regular file) or "ID X ERRNO-NAME message\n" (fork, pipe,
// chdir or exec failed). Requests come on
// stdin, one per record: "LENGTH\n" then LENGTH bytes of NUL-separated fields:
//   id, pump (0|1), log file, max bytes, keep, cwd, file, argc, args..., envc, NAME=VALUE...
// The pump's program and its first argument are this process's own arguments; or "inline" and the
// Perl pump's source (log-pump-perl.ts): the pump is then a fork of this process that runs that
// source itself, without an exec (no new perl to start, link and load per member: that start-up was
// a quarter of an apply's CPU, bench/README.md), holding no descriptor but its pipe and its log, and
// named "lazarus log-pump LOG" in ps. It ends when
// Lazarus closes its stdin (or dies); children it has not reaped are then the init's.
// Signal dispositions are the defaults (nothing here ignores SIGPIPE or SIGCHLD), so the children
// start with the defaults too.
export const PERL_SPAWNER = String.raw`# lazarus spawner (perl)
use strict;
use POSIX ();
use Fcntl qw(O_WRONLY O_RDONLY O_APPEND O_CREAT O_NOFOLLOW O_NONBLOCK O_NOCTTY F_GETFL F_SETFL);
my ($pumpProg, $pumpArg) = @ARGV;
my $pumpCode = defined $pumpProg && $pumpProg eq "inline" ? $pumpArg : undef;
# The inline pump, compiled once here with the modules it uses, so a fork runs it at once. It is the
# body of a named sub: its own subs share its variables on that sub's first call, the only call
# made in each fork. Its exit ends the fork at once (POSIX::_exit): no global destruction of this
# process's handles, whose descriptors the fork has closed (closing them again warns into the log).
my $pumpMain;
if (defined $pumpCode) {
  require Errno; require Time::HiRes; require Fcntl;
  no warnings;
  *CORE::GLOBAL::exit = sub { POSIX::_exit(@_ ? $_[0] : 0) };
  $pumpMain = eval "package LazarusPump; sub main {\n$pumpCode\n} \\&main" or die "lazarus spawner: the log pump does not compile: $@";
}
binmode STDIN; binmode STDOUT;
my $errname = sub { my $n = $_[0] + 0; for my $k (qw(ENOENT ELOOP ENXIO EACCES EPERM ENOTDIR EISDIR EMFILE ENFILE ENOSPC EROFS ENOEXEC E2BIG ENOMEM EAGAIN ENAMETOOLONG EDQUOT ETXTBSY)) { my $v = eval "POSIX::$k()"; return $k if defined $v && $v == $n; } return "E$n"; };
sub reply { my ($s) = @_; syswrite(STDOUT, $s) == length $s or exit 0; }
# Fork a child in a session of its own that sets itself up with $setup, then does $then with its
# status pipe (close-on-exec, like everything Perl opens) and a $fail that reports errno on it and
# exits; the status pipe is returned to the parent.
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
    # member's write end, a log): it would hold them for as long as the member writes. Handles are
    # closed by Perl's close (closed behind Perl's back, a number would stay counted by PerlIO, and
    # a log rotated onto it would never be closed); any other pipe or socket (none expected) by
    # number. What stays: 0, 1, 2 and the read-only files of modules with a __DATA__/__END__.
    close $_ for @own;
    my $keep = fileno $sw;
    if (opendir(my $d, "/proc/self/fd")) {
      my @fds = grep { /^\d+$/ && $_ > 2 && $_ != $keep } readdir $d;
      closedir $d;
      for my $fd (@fds) { my $t = readlink("/proc/self/fd/$fd"); POSIX::close($fd) if defined $t && $t =~ /^(?:pipe|socket|anon_inode):/; }
    }
    %ENV = ();
    close $sw;
    $run->();
  });
}
# What a child wrote on its status pipe before exec'ing: "" once it has exec'd, else its errno.
sub status { my ($sr) = @_; my $buf = ""; 1 while sysread($sr, $buf, 64, length $buf); close $sr; return $buf; }
my $reap = sub { 1 while waitpid(-1, POSIX::WNOHANG()) > 0; };
while (1) {
  my $hdr = <STDIN>;
  last unless defined $hdr;
  chomp $hdr;
  my $len = $hdr + 0; my $buf = "";
  last if $len <= 0;
  while (length $buf < $len) { my $r = read(STDIN, $buf, $len - length $buf, length $buf); last unless $r; }
  last if length $buf < $len;
  $reap->();
  my @f = split /\0/, $buf, -1;
  my ($id, $pump, $log, $max, $keep, $cwd, $file, $argc) = splice(@f, 0, 8);
  my @args = splice(@f, 0, $argc);
  my $envc = shift @f; my %env;
  for my $kv (splice(@f, 0, $envc)) { my $i = index($kv, "="); $env{substr($kv, 0, $i)} = substr($kv, $i + 1) if $i > 0; }
  my $lfh;
  if (!sysopen($lfh, $log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0640)) { reply("$id L " . $errname->($!) . " $!\n"); next; }
  if (!-f $lfh) {
    my $kind = -d _ ? "directory" : -p _ ? "FIFO" : -S _ ? "socket" : (-c _ || -b _) ? "device" : "special file";
    close $lfh; reply("$id K $kind\n"); next;
  }
  my $fl = fcntl($lfh, F_GETFL, 0); fcntl($lfh, F_SETFL, $fl & ~O_NONBLOCK) if defined $fl;
  my $lfd = fileno $lfh;
  my ($out, $pw) = ($lfd);
  if ($pump eq "1" && defined $pumpProg) {
    my $pr;
    if (!pipe($pr, $pw)) { reply("$id X " . $errname->($!) . " pipe: $!\n"); close $lfh; next; }
    my $rfd = fileno $pr;
    # The pump first, and exec'd, before the member: a member never writes into a pipe nobody reads.
    my $fds = sub { defined POSIX::dup2($rfd, 0) && defined POSIX::dup2($lfd, 1) && defined POSIX::dup2($lfd, 2) };
    my ($ppid, $pst) = defined $pumpMain
      ? fork_run($fds, sub {
          $0 = "lazarus log-pump $log";
          # This member's request (its environment) and what was read ahead are not the pump's to keep.
          %env = (); @args = (); @f = (); $buf = "";
          @ARGV = ($log, $max, $keep);
          eval { $pumpMain->() };
          syswrite(STDERR, "lazarus log-pump: $@") if $@;
        }, $lfh, $pr, $pw)
      : launch($fds, {}, $pumpProg, $pumpArg, $log, $max, $keep);
    close $pr;
    my $pe = defined $ppid ? status($pst) : ($pst + 0);
    if (!defined $ppid || length $pe) { $! = $pe + 0; reply("$id X " . $errname->($pe) . " log pump: $!\n"); close $pw; close $lfh; next; }
    $out = fileno $pw;
  }
  my ($pid, $st) = launch(sub {
    my $null = POSIX::open("/dev/null", O_RDONLY);
    defined $null && defined POSIX::dup2($null, 0) && ($null == 0 || POSIX::close($null)) && defined POSIX::dup2($out, 1) && defined POSIX::dup2($out, 2) && chdir $cwd;
  }, \%env, $file, @args);
  close $pw if $pw; close $lfh;
  my $e = defined $pid ? status($st) : ($st + 0);
  if (!defined $pid || length $e) { $! = $e + 0; reply("$id X " . $errname->($e) . " $!\n"); next; }
  reply("$id $pid\n");
}
`;
