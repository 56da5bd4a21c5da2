"""Agent runs: ``start_agent`` / ``execute_agent`` and the events one run emits.

Request: ``{"type": "start_agent"|"execute_agent", "agent", "message",
"stream"?, "thread_id"?, "id"?}``; ``id`` comes back as ``request_id``.

A run is a background task per request, so several can be in flight on one
connection (which is what triggers the message-pipeline 1011 bug). It sends
``agent_started``, ``agent_thinking``, ``tool_executing``, ``tool_completed``
(``partial_result`` chunks when streaming) and ``agent_completed``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import agents
from .bugs import RevisionBugs
from .connection import ConnectionContext, JsonDict, send_error, send_json
from .service_log import ServiceLog
from .settings import Settings
from .user_context import Thread, UserContextStore


class AgentRunner:
    """Validates run requests and plays each run's event sequence."""

    def __init__(self, bugs: RevisionBugs, settings: Settings, store: UserContextStore, log: ServiceLog) -> None:
        self.bugs = bugs
        self.settings = settings
        self.store = store
        self.log = log

    async def start(self, ws: ServerConnection, ctx: ConnectionContext, msg: JsonDict) -> None:
        """Route handler for ``start_agent`` / ``execute_agent``: validate, then run in the background."""
        request_id = msg.get("id")
        name = msg.get("agent")
        if not isinstance(name, str) or not name:
            await send_error(ws, "invalid_message", "missing 'agent'", request_id)
            return
        spec = agents.AGENTS.get(name)
        if spec is None:
            await send_error(ws, "unknown_agent", f"Unknown agent: {name!r}", request_id)
            return
        message = msg.get("message")
        if not isinstance(message, str):
            await send_error(ws, "invalid_message", "'message' must be a string", request_id)
            return
        thread: Thread | None = None
        if msg.get("thread_id") is not None:
            thread = self.store.get_thread(ctx.auth.user_id, str(msg["thread_id"]))
            if thread is None:
                await send_error(ws, "thread_not_found", f"no thread {msg['thread_id']!r}", request_id)
                return
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        task = asyncio.create_task(
            self._run_agent(ws, ctx, spec, message, run_id, request_id, bool(msg.get("stream")), thread)
        )
        ctx.active_runs[run_id] = task

    async def _run_agent(
        self,
        ws: ServerConnection,
        ctx: ConnectionContext,
        spec: agents.AgentSpec,
        message: str,
        run_id: str,
        request_id: Any,
        stream: bool,
        thread: Thread | None,
    ) -> None:
        """Emit the five critical events (plus stream chunks) for one run."""
        started = time.perf_counter()
        step = self.settings.step_s
        base: JsonDict = {
            "run_id": run_id,
            "agent": spec.name,
            "user_id": ctx.auth.user_id,
            "request_id": request_id,
            "thread_id": thread.thread_id if thread else None,
        }
        try:
            await send_json(ws, {"type": "agent_started", **base, "timestamp": time.time(), "stream": stream})
            await asyncio.sleep(step)
            await send_json(
                ws,
                {"type": "agent_thinking", **base, "timestamp": time.time(), "thought": agents.thinking(spec, message)},
            )
            await asyncio.sleep(step)
            call_id = f"call-{uuid.uuid4().hex[:8]}"
            await send_json(
                ws,
                {
                    "type": "tool_executing",
                    **base,
                    "timestamp": time.time(),
                    "tool": spec.tool,
                    "call_id": call_id,
                    "args": {"message_chars": len(message)},
                },
            )
            output = agents.run_tool(spec, message)
            await asyncio.sleep(step)
            await send_json(
                ws,
                {
                    "type": "tool_completed",
                    **base,
                    "timestamp": time.time(),
                    "tool": spec.tool,
                    "call_id": call_id,
                    "output": output,
                },
            )
            summary = agents.summarize(spec, message, output)
            if stream:
                chunks = agents.chunk_text(summary)
                for index, chunk in enumerate(chunks):
                    await send_json(
                        ws,
                        {
                            "type": "partial_result",
                            **base,
                            "index": index,
                            "chunk": chunk,
                            "total_chunks": len(chunks),
                        },
                    )
                    await asyncio.sleep(step / 2)
                if self.bugs.stream_finalizer_hangs:
                    # The finalizer waits for a "drained" signal nobody sends.
                    self.log("stream_finalizer_pending", run_id=run_id, connection_id=ctx.connection_id)
                    return
            await asyncio.sleep(step)
            if thread is not None:
                thread.messages.append({"role": "user", "content": message, "run_id": run_id})
                thread.messages.append({"role": "assistant", "content": summary, "agent": spec.name, "run_id": run_id})
            self.store.record_run(ctx.auth.user_id, spec.name)
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            ctx.active_runs.pop(run_id, None)  # no longer active once the final event is on the wire
            await send_json(
                ws,
                {
                    "type": "agent_completed",
                    **base,
                    "timestamp": time.time(),
                    "duration_ms": duration_ms,
                    "result": {
                        "agent": spec.name,
                        "summary": summary,
                        "tool": spec.tool,
                        "tool_output": output,
                        "message_chars": len(message),
                        "message_sha256": output["message_sha256"],
                    },
                },
            )
            self.log("agent_run_completed", run_id=run_id, agent=spec.name, duration_ms=duration_ms)
        except ConnectionClosed:
            pass  # client went away mid-run; nothing to deliver to
        finally:
            ctx.active_runs.pop(run_id, None)
