// Builds the dashboard into dist/: generates the gRPC-web client from
// ../proto with buf + protoc-gen-es (no system protoc), type-checks, and
// bundles with esbuild. The collector's build script embeds dist/.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const bin = (name) => new URL(`./node_modules/.bin/${name}`, import.meta.url).pathname;
// buf finds the protoc-gen-es plugin on PATH.
const env = { ...process.env, PATH: `${new URL("./node_modules/.bin", import.meta.url).pathname}:${process.env.PATH}` };
const run = (cmd, args) => execFileSync(cmd, args, { stdio: "inherit", env });

rmSync("src/gen", { recursive: true, force: true });
run(bin("buf"), ["generate"]);
run(bin("tsc"), ["--noEmit", "-p", "."]);

// Built beside dist/, then only changed files are replaced: an unchanged
// dashboard leaves dist/ untouched and the collector is not rebuilt.
rmSync("dist.new", { recursive: true, force: true });
mkdirSync("dist.new");
await esbuild.build({
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  outdir: "dist.new",
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync("index.html", "dist.new/index.html");

// What a browser downloads, compressed as the collector serves it.
let total = 0;
const files = ["index.html", "app.js", "app.css"];
for (const f of files) {
  const gz = gzipSync(readFileSync(`dist.new/${f}`), { level: 9 }).length;
  total += gz;
  console.log(`web/dist/${f}: ${gz} bytes gzipped`);
}
console.log(`web/dist: ${total} bytes gzipped in all`);
writeFileSync("dist.new/SIZE", `${total}\n`);
mkdirSync("dist", { recursive: true });
for (const f of [...files, "SIZE"]) {
  const next = readFileSync(`dist.new/${f}`);
  if (!existsSync(`dist/${f}`) || !readFileSync(`dist/${f}`).equals(next)) writeFileSync(`dist/${f}`, next);
}
rmSync("dist.new", { recursive: true, force: true });
