"""A streamable-HTTP MCP server for cordon's tests, written with the official Python SDK.

Usage: recording_server.py PORT LOG
Every call appends one JSON line to LOG: the tool, its arguments, and the
Authorization header the call carried; `sleep` also records when it was
cancelled. `grow` adds the tool `fresh` and announces the changed list.
"""

import asyncio
import json
import sys

from mcp.server.mcpserver import Context, MCPServer

PORT = int(sys.argv[1])
LOG = sys.argv[2]

server = MCPServer("recorder")


def record(ctx: Context, tool: str, **fields) -> str:
    headers = ctx.headers or {}
    authorization = headers.get("authorization", "")
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, "authorization": authorization, **fields}) + "\n")
    return authorization


@server.tool()
async def whoami(caller: str, ctx: Context) -> str:
    """Answers with the Authorization header this call carried."""
    return record(ctx, "whoami", caller=caller)


@server.tool()
async def sleep(seconds: float, ctx: Context) -> str:
    """Sleeps, then answers; records a cancellation."""
    record(ctx, "sleep", seconds=seconds)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        record(ctx, "sleep_cancelled")
        raise
    return "slept"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool `fresh` and tells the client its list changed."""

    def fresh() -> str:
        """A tool that did not exist at start-up."""
        return "fresh"

    server.add_tool(fresh, name="fresh")
    record(ctx, "grow")
    await ctx.session.send_tool_list_changed()
    return "grown"


server.run(transport="streamable-http", host="127.0.0.1", port=PORT)
