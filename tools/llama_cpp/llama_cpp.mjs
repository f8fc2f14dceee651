// llama.cpp's own tokenizer and greedy decoding on a GGUF, through node-llama-cpp's prebuilt binaries.
// Used by gecko.export.gguf (tests/test_gguf.py) to check a GGUF against the Hugging Face tokenizer and model.
//
//   node tools/llama_cpp/llama_cpp.mjs MODEL.gguf REQUEST.json   → one JSON object on stdout
//
// REQUEST: {"texts": [str, ...], "prompt": [id, ...], "max_tokens": n}; the reply holds, one list per text and
// no BOS added, "ids" (special-token text such as `<s>` parsed, as Hugging Face `tokenizers` does) and
// "ids_literal" (not parsed), and "generated" (the greedy continuation of the prompt).
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, requestPath] = process.argv.slice(2);
const request = JSON.parse(readFileSync(requestPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath});
const texts = request.texts ?? [];
const ids = texts.map((text) => Array.from(model.tokenize(text, true)));
const idsLiteral = texts.map((text) => Array.from(model.tokenize(text, false)));
let generated = [];
if (request.prompt?.length) {
    const context = await model.createContext({contextSize: 512, threads: 1});
    const sequence = context.getSequence();
    for await (const token of sequence.evaluate(request.prompt, {temperature: 0})) {
        generated.push(token);
        if (generated.length >= request.max_tokens) break;
    }
    await context.dispose();
}
process.stdout.write(JSON.stringify({ids, ids_literal: idsLiteral, generated, llama_cpp: llama.llamaCppRelease}) + "\n");
await model.dispose();
await llama.dispose();
