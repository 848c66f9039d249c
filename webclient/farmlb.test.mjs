// node --test webclient/farmlb.test.mjs — farmlb.js against the policy
// vectors Go wrote (testdata/policy-vectors.json): the same list and the
// same random numbers must give the same probabilities and the same choice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { policy, candidates, parseList } from "./farmlb.js";

const vectors = JSON.parse(readFileSync(new URL("../testdata/policy-vectors.json", import.meta.url)));

for (const v of vectors) {
  test(`${v.name} / ${v.policy}`, () => {
    const list = parseList(v.list);
    const pol = policy(v.policy);
    if (v.probabilities) {
      assert.ok(pol.probabilities, "Go has closed-form probabilities, JS has none");
      const p = pol.probabilities(list);
      v.probabilities.forEach((want, i) => assert.ok(Math.abs(p[i] - want) < 1e-12, `p[${i}] = ${p[i]}, Go says ${want}`));
    }
    let k = 0;
    const rand = () => v.uniforms[k++ % v.uniforms.length];
    const picks = [];
    for (let i = 0; i < v.picks.length; i++) {
      try {
        picks.push(pol.pick(list, rand).name);
      } catch (e) {
        assert.equal(e.name, "NoServerError");
        picks.push("");
      }
    }
    assert.deepEqual(picks, v.picks);
  });
}

test("candidates keep the best group's UP servers with room", () => {
  const list = parseList({
    servers: [
      { name: "a", url: "http://a", status: "DOWN", users: 0, priority: "A" },
      { name: "b", url: "http://b", status: "UP", users: 5, priority: "B", capacity: 5 },
      { name: "c", url: "http://c", status: "UP", users: 1, priority: "C" },
      { name: "d", url: "http://d", status: "DRAINING", users: 1, priority: "C" },
    ],
  });
  assert.deepEqual(candidates(list), [2]);
});

test("parseList refuses bad lists with a clear error", () => {
  assert.throws(() => parseList({}), /no servers array/);
  assert.throws(() => parseList({ servers: [{ name: "a", url: "http://a", status: "MAYBE", users: 1, priority: "A" }] }), /server 0: status/);
  assert.throws(() => parseList({ servers: [{ name: "a", url: "http://a", status: "UP", users: -1, priority: "A" }] }), /users/);
});
