// create thread -> stream -> interrupt -> resume -> history, with the official JS client.
// Usage: TRELLIS_URL=http://127.0.0.1:2024 node client-flow.mjs   (exits non-zero on a mismatch)
import assert from "node:assert/strict";
import { Client } from "@langchain/langgraph-sdk";

const apiUrl = process.env.TRELLIS_URL;
if (!apiUrl) {
  console.error("set TRELLIS_URL to the Trellis server to test");
  process.exit(2);
}
const apiKey = process.env.TRELLIS_API_KEY || undefined;
const client = new Client({ apiUrl, apiKey });

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function main() {
  const thread = await client.threads.create({ metadata: { via: "js-client" } });
  assert.ok(thread.thread_id, "thread has an id");

  // 1. Stream a run until it stops at the graph's interrupt.
  const first = await collect(
    client.runs.stream(thread.thread_id, "approval", {
      input: { topic: "javascript" },
      streamMode: ["updates", "values"],
    }),
  );
  assert.equal(first[0].event, "metadata", "first event is metadata");
  assert.ok(first[0].data.run_id, "metadata carries the run id");
  const updates = first.filter((p) => p.event === "updates").map((p) => p.data);
  assert.deepEqual(updates[0], { draft: { draft: "Draft about javascript", log: ["draft"] } });
  const interrupt = updates.find((u) => "__interrupt__" in u);
  assert.ok(interrupt, "an updates event carries __interrupt__");
  const [pending] = interrupt.__interrupt__;
  assert.deepEqual(pending.value, { question: "Approve this draft?", draft: "Draft about javascript" });
  assert.ok(pending.id, "the interrupt has an id");
  const lastValues = first.filter((p) => p.event === "values").at(-1).data;
  assert.equal(lastValues.draft, "Draft about javascript");

  const interrupted = await client.threads.get(thread.thread_id);
  assert.equal(interrupted.status, "interrupted");
  const state = await client.threads.getState(thread.thread_id);
  assert.deepEqual(state.next, ["review"]);
  assert.equal(state.tasks[0].interrupts[0].id, pending.id);

  // 2. Resume with an answer; the run streams to the end.
  const second = await collect(
    client.runs.stream(thread.thread_id, "approval", {
      command: { resume: { approved: true, feedback: "from js" } },
      streamMode: "values",
    }),
  );
  const final = second.filter((p) => p.event === "values").at(-1).data;
  assert.equal(final.approved, true);
  assert.equal(final.feedback, "from js");
  assert.deepEqual(final.log, ["draft", "review", "publish"]);
  assert.ok(!second.some((p) => p.event === "error"), "no error events");
  assert.equal((await client.threads.get(thread.thread_id)).status, "idle");

  // 3. History, newest first, shows every step of both runs.
  const history = await client.threads.getHistory(thread.thread_id, { limit: 20 });
  assert.deepEqual(history[0].values.log, ["draft", "review", "publish"]);
  assert.deepEqual(history[0].next, []);
  const nexts = history.map((h) => h.next.join(","));
  for (const step of ["review", "draft", "__start__"]) {
    assert.ok(nexts.includes(step), `history has a checkpoint before ${step}`);
  }
  const runs = await client.runs.list(thread.thread_id);
  assert.equal(runs.length, 2);
  assert.ok(runs.every((r) => r.status === "success"), "both runs succeeded");

  // 4. The plain resume closed the approval Trellis recorded for the interrupt.
  const response = await fetch(`${apiUrl}/approvals?thread_id=${thread.thread_id}`, {
    headers: apiKey ? { "x-api-key": apiKey } : {},
  });
  assert.equal(response.status, 200);
  const [approval] = await response.json();
  assert.equal(approval.interrupt_id, pending.id);
  assert.equal(approval.status, "approved");
  assert.deepEqual(approval.decision.value, { approved: true, feedback: "from js" });

  console.log(`ok: thread ${thread.thread_id}, ${history.length} checkpoints`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
