import * as ort from 'onnxruntime-node'
import {readFileSync} from 'node:fs'
const opts = JSON.parse(process.argv[2]); const model = process.argv[3]
const rss = () => { const t = readFileSync('/proc/self/status','utf8'); return [/VmRSS:\s+(\d+)/.exec(t)[1]/1024|0, /VmHWM:\s+(\d+)/.exec(t)[1]/1024|0] }
const s = await ort.InferenceSession.create(model, {executionProviders:['cpu'], intraOpNumThreads:2, ...opts})
const t = new ort.Tensor('float32', new Float32Array(3*224*224).fill(100), [1,3,224,224])
for (let i=0;i<5;i++) await s.run({data:t})
const xs=[]; for (let i=0;i<40;i++){const t0=performance.now(); await s.run({data:t}); xs.push(performance.now()-t0)}
xs.sort((a,b)=>a-b); console.log(process.env.MALLOC_MMAP_THRESHOLD_?'mmap128k':'default', JSON.stringify(opts), 'p50', xs[20].toFixed(2), 'rss', rss())
