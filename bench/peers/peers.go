// Package peers starts the brokers the benchmark compares, each as a child
// process on 127.0.0.1 with a free port and its data in a temporary folder:
// nats-server (JetStream on), redis-server (AOF, fsync every second),
// rabbitmq-server (with an epmd of its own) and `ferry serve` (its Kafka
// listener off, or on a free port of its own). It waits until each
// answers, and Stop kills the whole process group and removes the folder.
package peers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a running broker.
type Process struct {
	// Name is the program's name: "nats-server", "redis-server",
	// "rabbitmq-server", "ferry".
	Name string
	// Addr is where it listens: 127.0.0.1:PORT.
	Addr string
	// Dir is its data folder, removed by Stop unless it was given.
	Dir string
	// KafkaAddr is where `ferry serve` started with a Kafka listener
	// (FerryConfig.Kafka) serves Kafka clients: 127.0.0.1:PORT; "" for
	// the others.
	KafkaAddr string

	cmd     *exec.Cmd
	ownDir  bool
	exited  chan struct{}
	waitErr error
	log     *tail
	stop    sync.Once
	// helper is a process the broker needs beside it, stopped after it:
	// RabbitMQ's epmd. Nil for the others.
	helper *Process
}

// Options are what every Start* function takes.
type Options struct {
	// Dir is the data folder; a new temporary one (removed by Stop)
	// when empty.
	Dir string
	// Ready bounds the wait until the broker answers; 15s when 0.
	Ready time.Duration
}

// Find returns the path of a broker's program, looking on PATH and in the
// sbin folders Debian installs servers to (not on every user's PATH).
func Find(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, program)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/sbin: install it (Debian: apt-get install %s; scripts/test.sh does)",
		program, debianPackage(program))
}

func debianPackage(program string) string {
	switch program {
	case "ferry":
		return "nothing: build it with go build ./cmd/ferry"
	case "epmd":
		return "erlang-base"
	}
	return program
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs program with args built for a port (a free one, tried again
// if the broker could not bind it) and waits until ready says it answers.
func start(ctx context.Context, program string, opts Options, args func(port int, dir string) []string, ready func(ctx context.Context, addr string) error) (*Process, error) {
	path, err := Find(program)
	if err != nil {
		return nil, err
	}
	if opts.Ready <= 0 {
		opts.Ready = 15 * time.Second
	}
	dir, ownDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ferrybench-"+filepath.Base(program)+"-"); err != nil {
			return nil, err
		}
		ownDir = true
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		p := &Process{Name: program, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, ownDir: ownDir,
			exited: make(chan struct{}), log: &tail{max: 64 << 10}}
		p.cmd = exec.Command(path, args(port, dir)...)
		p.cmd.Dir = dir
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		// Its own process group, so Stop reaches whatever it forks (redis
		// forks for AOF rewrites); and killed with us if we die first.
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", program, err)
		}
		go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
		if lastErr = p.waitReady(ctx, opts.Ready, ready); lastErr == nil {
			return p, nil
		}
		p.kill()
		if !strings.Contains(p.log.String(), "in use") {
			break
		}
	}
	if ownDir {
		os.RemoveAll(dir)
	}
	return nil, lastErr
}

func (p *Process) waitReady(ctx context.Context, bound time.Duration, ready func(context.Context, string) error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		err := ready(actx, p.Addr)
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it answered (%v); its output:\n%s", p.Name, p.waitErr, p.log.String())
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s within %v: %v; its output:\n%s", p.Name, p.Addr, bound, err, p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PID is the broker's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Output is the last 64 KiB the broker wrote to stdout and stderr.
func (p *Process) Output() string { return p.log.String() }

// Stop terminates the broker's process group (SIGTERM, then SIGKILL after
// 10 seconds), waits for it and for the processes it started in groups of
// their own (Erlang's port programs), then stops its helper (RabbitMQ's
// epmd), and removes its data folder if Start made it. Stop is idempotent.
func (p *Process) Stop() error {
	var err error
	p.stop.Do(func() {
		pgid := p.cmd.Process.Pid
		desc := descendants(pgid)
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
		// Children it forked may outlive it; the group goes with it.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		reap(desc, 5*time.Second)
		if p.helper != nil {
			err = p.helper.Stop()
		}
		if p.ownDir {
			err = errors.Join(err, os.RemoveAll(p.Dir))
		}
	})
	return err
}

func (p *Process) kill() {
	desc := descendants(p.cmd.Process.Pid)
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	reap(desc, 5*time.Second)
	if p.helper != nil {
		p.helper.kill()
	}
}

// CPU is the CPU time (user and system) the broker process has used so
// far, from /proc (Linux); its threads are included, forked children not.
func (p *Process) CPU() (time.Duration, error) {
	return processCPU(p.PID())
}

// proc is a process as /proc shows it: its id, and its start time, which
// tells it from a later process given the same id.
type proc struct {
	pid   int
	start string
}

// procStat reads a process's parent, state and start time from
// /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], f[19], err == nil
}

// descendants lists every process below pid, from /proc (Linux; none
// elsewhere). Erlang starts its port programs (erl_child_setup and what
// it runs) in sessions of their own, out of the broker's group.
func descendants(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]proc{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, start, ok := procStat(child); ok {
			children[ppid] = append(children[ppid], proc{child, start})
		}
	}
	var out []proc
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// gone says whether the process exited (or is a zombie, which is done).
func (pr proc) gone() bool {
	_, state, start, ok := procStat(pr.pid)
	return !ok || start != pr.start || state == 'Z'
}

// reap waits up to bound for procs to exit (a port program exits once the
// VM that ran it is gone), then kills the ones left.
func reap(procs []proc, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for _, pr := range procs {
		for !pr.gone() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !pr.gone() {
			_ = syscall.Kill(pr.pid, syscall.SIGKILL)
		}
	}
}

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// dialLine connects to addr, optionally writes send, and returns the first
// line the server answers.
func dialLine(ctx context.Context, addr, send string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if send != "" {
		if _, err := conn.Write([]byte(send)); err != nil {
			return "", err
		}
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// Install installs, from Debian, the packages of the programs that Find
// cannot find, so that one command runs the comparison on a fresh
// machine. It needs apt-get and root; without them it returns Find's
// error, which says what to install.
func Install(programs ...string) error {
	var missing []string
	var findErr error
	for _, p := range programs {
		if _, err := Find(p); err != nil {
			missing = append(missing, debianPackage(p))
			findErr = errors.Join(findErr, err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return findErr
	}
	apt := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "installing %s from Debian\n", strings.Join(missing, " "))
	if err := apt("update", "-qq"); err != nil {
		return err
	}
	return apt(append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
}
