package peers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitReady bounds RabbitMQ's start when Options.Ready is 0: the Erlang
// VM and RabbitMQ's boot steps take several seconds.
const rabbitReady = 60 * time.Second

// debianRabbitMQ is Debian's real start script; /usr/sbin/rabbitmq-server
// is a wrapper that switches to the rabbitmq user and logs to /var/log.
const debianRabbitMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// StartRabbitMQ starts rabbitmq-server on 127.0.0.1 with every port its
// own (AMQP, Erlang distribution, epmd) and a node name of its own
// (ferrybench-RANDOM@localhost), so it runs beside a system RabbitMQ on
// 5672 and its epmd on 4369. Its node folder, logs, configuration, enabled
// plugins (none: no management plugin) and Erlang cookie (in HOME, mode
// 0400) are in the data folder. It starts its own epmd, in the
// foreground, on a free port (ERL_EPMD_PORT), so the node finds it and
// starts no epmd daemon that would outlive Stop. The broker runs at its
// defaults otherwise; the guest user may connect from loopback:
// amqp://guest:guest@ADDR/. It is ready once an AMQP connection opens.
func StartRabbitMQ(ctx context.Context, opts Options) (*Process, error) {
	path, err := findRabbitMQ()
	if err != nil {
		return nil, err
	}
	epmdPath, err := Find("epmd")
	if err != nil {
		return nil, err
	}
	if opts.Ready <= 0 {
		opts.Ready = rabbitReady
	}
	dir, ownDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ferrybench-rabbitmq-server-"); err != nil {
			return nil, err
		}
		ownDir = true
	}
	fail := func(err error) (*Process, error) {
		if ownDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	if err := writeRabbitFiles(dir); err != nil {
		return fail(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		var ports [3]int
		for i := range ports {
			if ports[i], err = FreePort(); err != nil {
				return fail(err)
			}
		}
		amqpPort, distPort, epmdPort := ports[0], ports[1], ports[2]
		if amqpPort == distPort || amqpPort == epmdPort || distPort == epmdPort {
			continue
		}
		node := "ferrybench-" + randomName(8) + "@localhost"
		env := append(os.Environ(),
			"HOME="+filepath.Join(dir, "home"),
			"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
			"ERL_EPMD_ADDRESS=127.0.0.1",
		)
		epmd, err := spawn(epmdPath, "epmd", []string{"-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1"}, env, dir)
		if err != nil {
			return fail(err)
		}
		epmd.Addr = "127.0.0.1:" + strconv.Itoa(epmdPort)
		if lastErr = epmd.waitReady(ctx, 10*time.Second, dialOnly); lastErr != nil {
			epmd.kill()
			if strings.Contains(epmd.log.String(), "in use") {
				continue
			}
			break
		}
		env = append(env,
			"RABBITMQ_NODENAME="+node,
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_PORT="+strconv.Itoa(amqpPort),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_LOGS=-", // to stdout, which Output keeps
			"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
			"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
			"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
			// The distribution listens on loopback only.
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
			// The script then execs the Erlang VM instead of waiting
			// for it in a shell: the broker's process is the VM, whose
			// CPU Process.CPU reads, and which SIGTERM stops cleanly.
			// -noinput (below) keeps the shell it would allow off.
			"RABBITMQ_ALLOW_INPUT=true",
		)
		p, err := spawn(path, "rabbitmq-server", []string{"-noinput"}, env, dir)
		if err != nil {
			epmd.Stop()
			return fail(err)
		}
		p.Addr, p.Dir, p.ownDir, p.helper = "127.0.0.1:"+strconv.Itoa(amqpPort), dir, ownDir, epmd
		if lastErr = p.waitReady(ctx, opts.Ready, rabbitAnswers); lastErr == nil {
			return p, nil
		}
		p.kill()
		if !strings.Contains(strings.ToLower(p.log.String()), "eaddrinuse") {
			break
		}
		// A port was taken between FreePort and the bind: the node's
		// files are its own, so the next try starts afresh.
		os.RemoveAll(filepath.Join(dir, "mnesia"))
	}
	return fail(lastErr)
}

// findRabbitMQ prefers Debian's start script to the wrapper on PATH.
func findRabbitMQ() (string, error) {
	if st, err := os.Stat(debianRabbitMQ); err == nil && !st.IsDir() {
		return debianRabbitMQ, nil
	}
	return Find("rabbitmq-server")
}

// writeRabbitFiles writes the node's configuration, its (empty) plugin
// list and environment file, and the Erlang cookie in its HOME.
func writeRabbitFiles(dir string) error {
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	conf := strings.Join([]string{
		"loopback_users.guest = true", // the default, said: guest from loopback only
		"log.console = true",
		"log.console.level = info",
		"log.file = false",
		"",
	}, "\n")
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"rabbitmq.conf", conf, 0o600},
		{"rabbitmq-env.conf", "", 0o600}, // not /etc/rabbitmq's
		{"enabled_plugins", "[].\n", 0o600},
		{filepath.Join("home", ".erlang.cookie"), randomName(20), 0o400},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts program in a process group of its own, killed with us if we
// die first, its output kept for Output.
func spawn(path, name string, args, env []string, dir string) (*Process, error) {
	p := &Process{Name: name, Dir: dir, exited: make(chan struct{}), log: &tail{max: 64 << 10}}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir, p.cmd.Env = dir, env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// dialOnly is ready once addr accepts a TCP connection.
func dialOnly(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// rabbitAnswers is ready once an AMQP connection as guest opens.
func rabbitAnswers(ctx context.Context, addr string) error {
	if err := dialOnly(ctx, addr); err != nil {
		return err
	}
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{
		Dial:       amqp.DefaultDial(timeout),
		Properties: amqp.Table{"connection_name": "ferrybench ready check"},
	})
	if err != nil {
		return err
	}
	return conn.Close()
}

// randomName is n random characters from [a-z0-9].
func randomName(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.Join(errors.New("crypto/rand"), err))
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
