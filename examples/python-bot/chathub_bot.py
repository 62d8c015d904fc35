#!/usr/bin/env python3
"""A FAQ bot for chathub: an example of a bot built on the wire protocol (protocol/PROTOCOL.md)
with nothing but `websockets` and `msgpack` (pip install websockets msgpack).

It connects with a `bot` token, as the tenant's bot (the admin setting `{"bot": {"agent":
"faq-bot"}}`): while it is connected, every new or reopened conversation of the tenant is
the bot's to answer first. It follows the tenant's queue and, for each conversation it
owns, reads the customer's latest question: one that matches a FAQ keyword gets its answer
and the conversation is finished (the customer's next message reopens it, for the bot
again); anything else, or a customer asking for a person, is handed off to the agents with
a summary and the fields it collected (`handoff`: the conversation goes back to the queue,
which starts the tenant's alerts). Every write is fenced by the epoch the bot saw: when a
human takes the conversation over first, the bot's write is refused with `conflict` and the
bot lets it be. It reconnects with backoff and jitter, catches up on what it owns after a
reconnect, and retries a write with the same `client_msg_id` (the server records it once).

    python3 chathub_bot.py --url ws://127.0.0.1:8080/ --token "$(chathub token --tenant demo \\
        --role bot --subject faq-bot)"

FAQ entries are `keyword=answer` (repeat `--faq`), or a JSON file `{"keyword": "answer"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import random
import sys
import unicodedata

import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("chathub-bot")

#: Close codes after which reconnecting does not help (protocol/vectors/close_codes.json).
FATAL_CLOSE_CODES = {1000, 1002, 1007, 1008, 1009, 4101}
#: A request without a reply in this long is given up (seconds).
REQUEST_TIMEOUT = 15.0

DEFAULT_FAQ = {
    "hours": "We are here every day from 9:00 to 18:00.",
    "opening": "We are here every day from 9:00 to 18:00.",
    "points": "You earn 1 point per euro; see your balance in the app under Rewards.",
    "coupon": "Coupons are under Rewards › My coupons; each works once, before its end date.",
}


class RequestFailed(Exception):
    """An `err` reply: `code` is the protocol's error code."""

    def __init__(self, frame: dict):
        super().__init__(frame.get("message", frame.get("code")))
        self.code = frame.get("code")
        self.frame = frame


def fold(text: str) -> str:
    """Lower case without accents, so `Horário` matches `horario`."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class FaqBot:
    """One bot: a connection at a time, answers from `faq` (keyword → answer)."""

    def __init__(self, url: str, token: str, faq: dict[str, str]):
        self.url = url + ("&" if "?" in url else "?") + "token=" + token
        self.faq = {fold(k): v for k, v in faq.items()}
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.ws = None
        self.me = None
        #: Conversations being looked at now (one look at a time each).
        self.busy: set[str] = set()
        self.answered = 0
        self.handed_off = 0

    def answer_for(self, text: str) -> str | None:
        """The FAQ answer for a question, if one of the keywords is in it."""
        words = fold(text)
        for keyword, answer in self.faq.items():
            if keyword in words:
                return answer
        return None

    async def request(self, op: str, **fields):
        """One request; its `result`, or `RequestFailed`."""
        rid = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        try:
            await self.ws.send(msgpack.packb({"id": rid, "op": op, **fields}))
            frame = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self.pending.pop(rid, None)
        if frame["type"] == "err":
            raise RequestFailed(frame)
        return frame["result"]

    async def consider(self, conversation: str) -> None:
        """Looks at a conversation the bot owns and answers or hands off its latest question."""
        if conversation in self.busy:
            return
        self.busy.add(conversation)
        try:
            state = await self.request("open", conversation=conversation)
            if state["status"] != "active" or state.get("owner") != self.me:
                return  # not ours (any more): a human took it, or it was handed off
            page = await self.request("history", conversation=conversation, limit=20)
            question = None
            for event in reversed(page["events"]):
                if event.get("event") != "message":
                    continue
                if event["author"]["role"] != "end_user":
                    break  # answered already
                if event["content"].get("kind") == "text":
                    question = event
                    break
            if question is None:
                return
            text = question["content"]["text"]
            asked_for_a_person = self.wants_a_person(text)
            answer = None if asked_for_a_person else self.answer_for(text)
            epoch = state["epoch"]
            if answer is None:
                reason = "asked for a person" if asked_for_a_person else "not in the FAQ"
                await self.hand_off(conversation, epoch, question, reason)
                return
            # The same key for every retry of this answer: recorded once.
            key = f"faq-{conversation}-{question['seq']}"
            ack = await self.fenced(
                "send", conversation=conversation, text=answer,
                epoch=epoch, client_msg_id=key,
            )
            if ack is None:
                return
            self.answered += 1
            log.info("%s: answered", conversation)
            # Answered: close the cycle, so that the customer's next question reopens it
            # (for the bot again while it runs, for the agents otherwise).
            await self.fenced("finish", conversation=conversation, epoch=ack["epoch"])
        except RequestFailed as e:
            log.warning("%s: %s (%s)", conversation, e, e.code)
        finally:
            self.busy.discard(conversation)

    @staticmethod
    def wants_a_person(text: str) -> bool:
        """Whether the customer asks for a human."""
        words = fold(text)
        return any(k in words for k in ("agent", "human", "person", "someone"))

    async def hand_off(
        self, conversation: str, epoch: int, question: dict, reason: str
    ) -> None:
        """Gives the conversation to the agents with what the bot gathered and why."""
        text = question["content"]["text"]
        fields = [
            {"name": "question", "value": text[:500] or "-"},
            {"name": "reason", "value": reason},
        ]
        summary = f"The customer asks: {text}"
        view = await self.fenced(
            "handoff", conversation=conversation, epoch=epoch,
            summary=summary[:2000], fields=fields,
        )
        if view is not None:
            self.handed_off += 1
            log.info("%s: handed off to the agents", conversation)

    async def fenced(self, op: str, **fields):
        """A write on the epoch the bot saw: its result, or None when a human took over.

        Transient refusals (`unavailable`, `rate_limited`, a timeout) are retried a few
        times; the request is the same each time, so the server records it once."""
        conversation = fields.get("conversation")
        for attempt in range(5):
            try:
                return await self.request(op, **fields)
            except RequestFailed as e:
                if e.code in ("conflict", "forbidden"):
                    log.info("%s: %s refused (%s): a human has it", conversation, op, e.code)
                    return None
                if e.code not in ("unavailable", "rate_limited"):
                    raise
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("%s: %s gave up after retries", conversation, op)
        return None

    async def catch_up(self) -> None:
        """Follows the queue and looks at every conversation the bot owns now."""
        await self.request("inbox")
        cursor = None
        while True:
            fields = {"status": "active", "limit": 100}
            if cursor:
                fields["cursor"] = cursor
            page = await self.request("list", **fields)
            for item in page["items"]:
                if item.get("owner") == self.me:
                    asyncio.create_task(self.consider(item["conversation"]))
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def session(self) -> None:
        """One connection: welcome, catch up, then answer as the queue changes."""
        async with connect(self.url, subprotocols=["chathub.v1.msgpack"], max_size=1 << 20) as ws:
            self.ws = ws
            welcome = msgpack.unpackb(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {welcome!r}")
            self.me = welcome["subject"]
            log.info("connected as %s (%s)", self.me, welcome["role"])
            reader = asyncio.create_task(self.read(ws))
            try:
                await self.catch_up()
                await reader
            finally:
                reader.cancel()
                for future in self.pending.values():
                    future.cancel()

    async def read(self, ws) -> None:
        """Routes replies to their requests and queue changes to `consider`."""
        async for data in ws:
            frame = msgpack.unpackb(data)
            kind = frame.get("type")
            if kind in ("ok", "err") and frame.get("id") in self.pending:
                future = self.pending[frame["id"]]
                if not future.done():
                    future.set_result(frame)
            elif kind == "queue" and frame.get("status") == "active" and frame.get("owner") == self.me:
                # A conversation opened or reopened for the bot, or its customer wrote again.
                asyncio.create_task(self.consider(frame["conversation"]))

    async def run(self) -> None:
        """Connects and keeps reconnecting (backoff with jitter) until a fatal close."""
        attempt = 0
        while True:
            try:
                await self.session()
                attempt = 0
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else 1006
                if code in FATAL_CLOSE_CODES:
                    log.error("closed with %s: not reconnecting", code)
                    return
                log.warning("connection closed (%s): reconnecting", code)
            except (OSError, asyncio.TimeoutError) as e:
                log.warning("cannot connect (%s): retrying", e)
            attempt += 1
            await asyncio.sleep(min(5.0, 0.25 * 2 ** min(attempt, 5)) * (0.5 + random.random() / 2))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the node's WebSocket URL")
    parser.add_argument("--token", required=True, help="a bot token (chathub token --role bot)")
    parser.add_argument("--faq", action="append", default=[], help="keyword=answer (repeatable)")
    parser.add_argument("--faq-file", help='a JSON file {"keyword": "answer"}')
    args = parser.parse_args(argv)
    faq = dict(DEFAULT_FAQ)
    if args.faq_file:
        with open(args.faq_file, encoding="utf-8") as f:
            faq = json.load(f)
    for entry in args.faq:
        keyword, _, answer = entry.partition("=")
        if not answer:
            parser.error(f"--faq {entry!r}: give keyword=answer")
        faq[keyword] = answer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(FaqBot(args.url, args.token, faq).run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
