"""A real ipykernel of this interpreter, driven through jupyter_client, for the tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import zmq
from ipykernel.kernelspec import get_kernel_dict
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT = 60


class _ThisInterpreter(KernelSpecManager):
    """Always this interpreter's ipykernel, whatever kernelspecs the machine has."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(resource_dir="", **get_kernel_dict())


@dataclass
class Reply:
    """What a user sees of one executed cell."""

    content: dict[str, Any]
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  #: of each input() the cell made

    @property
    def status(self) -> str:
        return str(self.content["status"])

    @property
    def plain_stdout(self) -> str:
        """stdout without colours (IPython's debugger colours what it lists)."""
        return _ANSI.sub("", self.stdout)

    @property
    def traceback(self) -> str:
        return _ANSI.sub("", "\n".join(self.content.get("traceback", [])))


class Kernel:
    def __init__(self, client: BlockingKernelClient, manager: KernelManager) -> None:
        self.client = client
        self.manager = manager

    def execute(
        self,
        code: str,
        timeout: float = TIMEOUT,
        on_stdout: Callable[[str], None] | None = None,
        stdin: Iterable[str] = (),
    ) -> Reply:
        """Run one cell; return what it printed, displayed and replied.

        Every message is matched to this request by its parent's msg_id: a reply left
        over from an earlier request (say a second `kernel_info` answered after a slow
        start) is never taken for this cell's. `on_stdout(text so far)` is called at
        each piece of stdout, while the cell still runs. `stdin` is what the user types:
        one line for each `input()` of the cell (a debugger's prompt, say), sent as the
        kernel's input_request for it comes; an input_request beyond them interrupts
        the cell, and the test fails.
        """
        answers = iter(stdin)
        unanswered: list[str] = []
        iopub, stdin_channel = self.client.iopub_channel, self.client.stdin_channel
        poller = zmq.Poller()
        poller.register(iopub.socket, zmq.POLLIN)
        poller.register(stdin_channel.socket, zmq.POLLIN)
        msg_id = self.client.execute(code, allow_stdin=True)
        reply = Reply(content={})
        while True:
            ready = dict(poller.poll(int(timeout * 1000)))
            if not ready:
                raise TimeoutError(f"no message from the kernel in {timeout} s")
            if stdin_channel.socket in ready:
                request = stdin_channel.get_msg(timeout=0)
                if request["parent_header"].get("msg_id") == msg_id:
                    reply.prompts.append(request["content"]["prompt"])
                    answer = next(answers, None)
                    if answer is None:
                        unanswered.append(request["content"]["prompt"])
                        self.manager.interrupt_kernel()
                    else:
                        self.client.input(answer)
            if iopub.socket not in ready:
                continue
            msg = iopub.get_msg(timeout=0)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                    if on_stdout is not None:
                        on_stdout(reply.stdout)
                else:
                    reply.stderr += content["text"]
            elif kind in ("execute_result", "display_data", "error"):
                reply.outputs.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply.content = self._shell_reply(msg_id, "execute_reply", timeout)
        assert not unanswered, f"the cell asked for input beyond what was typed: {unanswered}"
        return reply

    def complete(self, code: str, cursor_pos: int | None = None) -> list[str]:
        return list(self.complete_reply(code, cursor_pos)["matches"])

    def complete_reply(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """The whole complete_reply: Jupyter front ends read `metadata` for each match's type."""
        msg_id = self.client.complete(code, len(code) if cursor_pos is None else cursor_pos)
        return self._shell_reply(msg_id, "complete_reply", TIMEOUT)

    def _shell_reply(self, msg_id: str, msg_type: str, timeout: float) -> dict[str, Any]:
        """The content of the shell reply to request `msg_id`; replies to others are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_shell_msg(timeout=max(0.0, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                assert msg["msg_type"] == msg_type, msg["msg_type"]
                return dict(msg["content"])


@contextmanager
def running_kernel() -> Iterator[Kernel]:
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield Kernel(client, manager)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
