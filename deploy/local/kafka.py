"""Apache Kafka (KRaft, combined broker + controller nodes) run from the official jars, without Docker.

`KafkaCluster(nodes=1)` is the development/test broker; `KafkaCluster(nodes=3)` is the cluster the fault
tests kill nodes of. Jars come from Maven Central through `deploy/local/pom.xml` into a shared cache;
each cluster keeps its configuration, data, logs and pid files under its own state directory, so a
cluster started by one process (`registry kafka up`) can be inspected and stopped by another.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).with_name("pom.xml")
STATE_ROOT = REPO_ROOT / "var" / "kafka"
DEFAULT_LIBS_DIR = STATE_ROOT / "libs"
# Node i listens on base + 2i (clients) and base + 2i + 1 (controller quorum).
DEFAULT_BASE_PORTS = {1: 9092, 3: 19092}
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
_COMPLETE_MARKER = ".complete"
_CLUSTER_FILE = "cluster.json"


class KafkaError(RuntimeError):
    """The local broker could not be fetched, formatted, started or stopped."""


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None
    alive: bool
    port: int
    controller_port: int
    log_file: Path


def fetch_jars(libs_dir: Path = DEFAULT_LIBS_DIR) -> Path:
    """Copy the broker's jars into `libs_dir` with Maven unless a fetch for the current pom is there."""
    pom_digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    marker = libs_dir / _COMPLETE_MARKER
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test sessions share the cache: one fetches, the others wait for it.
    with (libs_dir.parent / f".{libs_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == pom_digest:
            return libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError("Maven (`mvn`) is needed to fetch the Kafka jars: install it, or use another broker")
        # Fetch beside the cache and swap it in, so a failed fetch never leaves a half-filled cache.
        staging = libs_dir.with_name(f"{libs_dir.name}.fetching")
        shutil.rmtree(staging, ignore_errors=True)
        command = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies"]
        result = subprocess.run(
            [*command, f"-DoutputDirectory={staging.resolve()}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaError(f"fetching the Kafka jars failed:\n{result.stdout}{result.stderr}")
        (staging / _COMPLETE_MARKER).write_text(pom_digest)
        shutil.rmtree(libs_dir, ignore_errors=True)
        staging.rename(libs_dir)
    return libs_dir


def pick_free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 now (held open together so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def random_cluster_id() -> str:
    """A Kafka Uuid in base64; like Kafka's own, never starting with '-' (it would read as a flag)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes)[:22].decode()
        if not candidate.startswith("-"):
            return candidate


def metadata_broker_ids(host: str, port: int, timeout: float = 2.0) -> set[int]:
    """Ask one broker for metadata (Metadata v4, no topics) and return the ids of the live brokers it lists.

    A plain blocking request, so it works the same from sync code and from inside a running event loop.
    Raises OSError when the broker does not answer.
    """
    client_id = b"registry-probe"
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">i?", 0, False)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _receive(sock, 4))
        response = _receive(sock, size)
    # correlation id, throttle time, then the broker array: node id, host, port, nullable rack.
    (count,) = struct.unpack_from(">i", response, 8)
    offset, ids = 12, set()
    for _ in range(count):
        node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 6 + host_length + 4
        (rack_length,) = struct.unpack_from(">h", response, offset)
        offset += 2 + max(rack_length, 0)
        ids.add(node_id)
    return ids


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise KafkaError("Java 17+ is needed to run the local Kafka broker; install it or set JAVA_HOME")
    return java


def _log_excerpt(node_dir: Path) -> str:
    """The first error a node logged with the exception line after it, else the end of its console output."""
    log = node_dir / "server.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    for index, line in enumerate(lines):
        if "] ERROR " in line:
            return "\n".join(lines[index : index + 2])
    console = node_dir / "stdout.log"
    return "\n".join(console.read_text(errors="replace").splitlines()[-10:]) if console.is_file() else ""


class KafkaCluster:
    """A KRaft cluster of 1 or 3 combined broker/controller nodes on 127.0.0.1.

    Blocking methods; from async code call them through `asyncio.to_thread`.
    """

    def __init__(
        self,
        name: str | None = None,
        nodes: int = 1,
        *,
        state_dir: Path | None = None,
        libs_dir: Path | None = None,
        base_port: int | None = None,
        free_ports: bool = False,
    ) -> None:
        if nodes not in DEFAULT_BASE_PORTS:
            raise ValueError("a local Kafka cluster has 1 or 3 nodes")
        self.name = name or f"{nodes}-node"
        self.nodes = nodes
        self.state_dir = state_dir or STATE_ROOT / self.name
        self.libs_dir = libs_dir or DEFAULT_LIBS_DIR
        if free_ports:
            ports = pick_free_ports(2 * nodes)
        else:
            base = base_port or DEFAULT_BASE_PORTS[nodes]
            ports = list(range(base, base + 2 * nodes))
        self.ports = ports[0::2]
        self.controller_ports = ports[1::2]
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def load(cls, state_dir: Path) -> KafkaCluster:
        """The cluster whose state (written by `start`) is in `state_dir`."""
        saved = json.loads((state_dir / _CLUSTER_FILE).read_text())
        cluster = cls(saved["name"], saved["nodes"], state_dir=state_dir, libs_dir=Path(saved["libs_dir"]))
        cluster.ports, cluster.controller_ports = saved["ports"], saved["controller_ports"]
        return cluster

    @classmethod
    def discover(cls, state_root: Path = STATE_ROOT) -> list[KafkaCluster]:
        """Every cluster that has been started under `state_root`."""
        return [cls.load(path.parent) for path in sorted(state_root.glob(f"*/{_CLUSTER_FILE}"))]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node_dir(self, node_id: int) -> Path:
        return self.state_dir / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.log"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Fetch, configure and format as needed, start every node that is not running, wait for all."""
        fetch_jars(self.libs_dir)
        cluster_id = self._write_state()
        unformatted = [i for i in range(self.nodes) if not (self._data_dir(i) / "meta.properties").exists()]
        self._format(cluster_id, unformatted)
        for node_id in range(self.nodes):
            if not self._alive(node_id):
                self._spawn(node_id)
        self._wait_ready(range(self.nodes), timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node together (a clean shutdown), SIGKILL those still running after `timeout`."""
        running = [i for i in range(self.nodes) if self._alive(i)]
        for node_id in running:
            self._signal(node_id, signal.SIGTERM)
        survivors = self._wait_exit(running, timeout)
        for node_id in survivors:
            self._signal(node_id, signal.SIGKILL)
        self._wait_exit(survivors, 10.0)
        for node_id in range(self.nodes):
            self._pid_file(node_id).unlink(missing_ok=True)

    def status(self) -> list[NodeStatus]:
        statuses = []
        for i in range(self.nodes):
            alive = self._alive(i)
            pid = self._pid(i) if alive else None
            statuses.append(NodeStatus(i, pid, alive, self.ports[i], self.controller_ports[i], self.log_file(i)))
        return statuses

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL, *, wait: bool = True) -> None:
        """Send `sig` to one node; with `wait`, return once it has exited (pass False for SIGSTOP/SIGCONT)."""
        if not self._alive(node_id):
            raise KafkaError(f"Kafka node {node_id} of {self.name!r} is not running")
        self._signal(node_id, sig)
        if wait and self._wait_exit([node_id], 30.0):
            raise KafkaError(f"Kafka node {node_id} did not exit after signal {sig}")

    def start_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Restart one node (after `kill_node`) and wait until it serves metadata again."""
        if not self._alive(node_id):
            self._spawn(node_id)
        self._wait_ready([node_id], timeout)

    # -- configuration ---------------------------------------------------------------------------

    def _write_state(self) -> str:
        """Write cluster.json and every node's configuration; return the cluster id (kept across restarts)."""
        state_file = self.state_dir / _CLUSTER_FILE
        saved = json.loads(state_file.read_text()) if state_file.is_file() else None
        if saved is not None and saved["nodes"] != self.nodes:
            raise KafkaError(f"{self.state_dir} holds a cluster of another size: remove it or use another name")
        cluster_id: str = saved["cluster_id"] if saved is not None else random_cluster_id()
        for node_id in range(self.nodes):
            node_dir = self.node_dir(node_id)
            node_dir.mkdir(parents=True, exist_ok=True)
            (node_dir / "server.properties").write_text(self._server_properties(node_id))
            (node_dir / "log4j2.xml").write_text(_LOG4J2_XML.format(log_file=self.log_file(node_id)))
        state = {
            "name": self.name,
            "nodes": self.nodes,
            "cluster_id": cluster_id,
            "libs_dir": str(self.libs_dir),
            "ports": self.ports,
            "controller_ports": self.controller_ports,
        }
        state_file.write_text(json.dumps(state, indent=2))
        return cluster_id

    def _server_properties(self, node_id: int) -> str:
        replication, min_isr = (1, 1) if self.nodes == 1 else (3, 2)
        # Static voters rather than a dynamic quorum: the voters' endpoints then live in the config only,
        # so a restarted cluster may come back on other ports.
        voters = ",".join(f"{i}@127.0.0.1:{port}" for i, port in enumerate(self.controller_ports))
        settings = {
            "process.roles": "broker,controller",
            "node.id": node_id,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node_id]},"
            f"CONTROLLER://127.0.0.1:{self.controller_ports[node_id]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.ports[node_id]}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.voters": voters,
            "log.dirs": self._data_dir(node_id),
            # The platform creates its topics explicitly; a typo in a topic name must fail, not create one.
            "auto.create.topics.enable": "false",
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            # Tests start consumer groups constantly; don't wait 3 s for more members to join.
            "group.initial.rebalance.delay.ms": 0,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format(self, cluster_id: str, node_ids: Sequence[int]) -> None:
        # Each format is its own JVM (~2 s); run them side by side.
        runs = {
            node_id: subprocess.Popen(
                self._java_command(
                    node_id,
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster_id,
                    "--config",
                    str(self.node_dir(node_id) / "server.properties"),
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for node_id in node_ids
        }
        for node_id, run in runs.items():
            output, _ = run.communicate()
            if run.returncode != 0:
                raise KafkaError(f"formatting the storage of Kafka node {node_id} failed:\n{output}")

    def _java_command(self, node_id: int, main_class: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.node_dir(node_id) / 'log4j2.xml'}"
        # Java expands the trailing '*' of a class path entry itself: no shell involved.
        return [_java(), *JVM_OPTIONS, log4j, "-cp", f"{self.libs_dir}/*", main_class, *args]

    # -- processes -------------------------------------------------------------------------------

    def _data_dir(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "data"

    def _pid_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "kafka.pid"

    def _pid(self, node_id: int) -> int | None:
        try:
            return int(self._pid_file(node_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _spawn(self, node_id: int) -> None:
        node_dir = self.node_dir(node_id)
        # The broker logs through log4j2 to server.log; stdout.log only catches what the JVM prints
        # before that (bad options, a crash). Never pytest's or the CLI's own stdout.
        with (node_dir / "stdout.log").open("ab") as console:
            process = subprocess.Popen(
                self._java_command(node_id, "kafka.Kafka", str(node_dir / "server.properties")),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=node_dir,
                start_new_session=True,
                close_fds=True,
            )
        self._processes[node_id] = process
        self._pid_file(node_id).write_text(str(process.pid))

    def _alive(self, node_id: int) -> bool:
        process = self._processes.get(node_id)
        if process is not None:
            return process.poll() is None
        pid = self._pid(node_id)
        return pid is not None and self._is_our_broker(pid, node_id)

    def _is_our_broker(self, pid: int, node_id: int) -> bool:
        """Whether `pid` still is this node's JVM, not a later process that reused the number."""
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            if Path("/proc/self").exists():
                return False
            try:  # no /proc (macOS): all we can tell is whether the pid exists
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            return True
        return str(self.node_dir(node_id) / "server.properties").encode() in command_line

    def _signal(self, node_id: int, sig: int) -> None:
        pid = self._pid(node_id)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the JVM leads its own process group (start_new_session)

    def _wait_exit(self, node_ids: Iterable[int], timeout: float) -> list[int]:
        """Wait for the nodes to exit (reaping our own children); return those still running."""
        deadline = time.monotonic() + timeout
        pending = list(node_ids)
        while pending and time.monotonic() < deadline:
            pending = [i for i in pending if self._alive(i)]
            if pending:
                time.sleep(0.1)
        return pending

    def _wait_ready(self, node_ids: Iterable[int], timeout: float) -> None:
        """Wait until each node answers metadata listing every one of `node_ids` as a live broker."""
        expected = set(node_ids)
        deadline = time.monotonic() + timeout
        for node_id in sorted(expected):
            while True:
                if not self._alive(node_id):
                    raise KafkaError(
                        f"Kafka node {node_id} exited while starting; see {self.log_file(node_id)} and "
                        f"{self.node_dir(node_id) / 'stdout.log'}:\n{_log_excerpt(self.node_dir(node_id))}"
                    )
                try:
                    if expected <= metadata_broker_ids("127.0.0.1", self.ports[node_id]):
                        break
                except OSError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise KafkaError(
                        f"Kafka node {node_id} did not answer metadata on port {self.ports[node_id]} within "
                        f"{timeout:.0f} s; see {self.log_file(node_id)}"
                    )
                time.sleep(0.2)


_LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <File name="file" fileName="{log_file}">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info">
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
"""
