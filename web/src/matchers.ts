// Label matchers as people write them (k=v, k!=v, k=~re, k!~re), the
// form services, silences and the CLI use, and their wire form.
import { create } from "@bufbuild/protobuf";
import { MatchOp, type Selector, SelectorSchema } from "./gen/nightjar/v1/nightjar_pb";

export interface Matcher {
  name: string;
  op: "=" | "!=" | "=~" | "!~";
  value: string;
}

const OPS: Record<Matcher["op"], MatchOp> = {
  "=": MatchOp.EQUAL,
  "!=": MatchOp.NOT_EQUAL,
  "=~": MatchOp.REGEX,
  "!~": MatchOp.NOT_REGEX,
};

/** Parses `k=v`, `k!=v`, `k=~re`, `k!~re` (values may be quoted). */
export function parseMatcher(text: string): Matcher | null {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/.exec(text);
  if (!m) return null;
  let value = m[3];
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return { name: m[1], op: m[2] as Matcher["op"], value };
}

export function matches(m: Matcher, value: string | undefined): boolean {
  const v = value ?? "";
  switch (m.op) {
    case "=":
      return v === m.value;
    case "!=":
      return v !== m.value;
    case "=~":
      return new RegExp(`^(?:${m.value})$`).test(v);
    case "!~":
      return !new RegExp(`^(?:${m.value})$`).test(v);
  }
}

export function selector(metric: string, matchers: Matcher[]): Selector {
  return create(SelectorSchema, {
    metric,
    matchers: matchers.map((m) => ({ name: m.name, op: OPS[m.op], value: m.value })),
  });
}
