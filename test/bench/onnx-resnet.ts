/**
 * Benchmark fallback: a ResNet-18 / ResNet-50 (ImageNet layout, 1000 classes) written directly as an ONNX file
 * with onnx-proto, for when the project's MXNet writer is not available. The weights are deterministic
 * pseudo-random (He-scaled, so activations stay finite and no denormals slow the CPU down); the compute is that
 * of the real network (BatchNorm already folded into the convolutions, as ONNX Runtime does anyway).
 *
 * The input is `data` [N,3,224,224] with values 0..255 (like SageMaker's image-classification models, which
 * normalise inside the network); the output `prob` [N,1000] is a softmax.
 */
import {writeFile} from 'node:fs/promises'
import onnxProto from 'onnx-proto'

const {onnx} = onnxProto

type Node = ReturnType<typeof onnx.NodeProto.create>
type Tensor = ReturnType<typeof onnx.TensorProto.create>

class GraphBuilder {
  initializers: Tensor[] = []
  nodes: Node[] = []
  private seed = 12_345
  private n = 0

  add(a: string, b: string): string {
    return this.node('Add', [a, b], {})
  }

  conv(x: string, cin: number, cout: number, k: number, stride: number, gain = 1): string {
    const name = `conv${this.n++}`
    const fanIn = cin * k * k
    const w = new Float32Array(cout * fanIn)
    const std = Math.sqrt(2 / fanIn) * gain
    for (let i = 0; i < w.length; i++) w[i] = (this.rand() * 2 - 1) * std * Math.sqrt(3)
    this.init(`${name}_weight`, [cout, cin, k, k], w)
    this.init(`${name}_bias`, [cout], new Float32Array(cout))
    const pad = Math.floor(k / 2)
    return this.node('Conv', [x, `${name}_weight`, `${name}_bias`], {
      kernel_shape: [k, k],
      pads: [pad, pad, pad, pad],
      strides: [stride, stride],
    })
  }

  fc(x: string, cin: number, cout: number): string {
    const w = new Float32Array(cin * cout)
    const std = Math.sqrt(1 / cin)
    for (let i = 0; i < w.length; i++) w[i] = (this.rand() * 2 - 1) * std
    this.init('fc_weight', [cout, cin], w)
    this.init('fc_bias', [cout], new Float32Array(cout))
    return this.node('Gemm', [x, 'fc_weight', 'fc_bias'], {transB: 1})
  }

  init(name: string, dims: number[], data: Float32Array): void {
    this.initializers.push(
      onnx.TensorProto.create({
        dataType: onnx.TensorProto.DataType.FLOAT,
        dims,
        name,
        rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      }),
    )
  }

  node(op: string, inputs: string[], attrs: Record<string, number | number[]>, output?: string): string {
    const out = output ?? `t${this.n++}`
    const attribute = Object.entries(attrs).map(([name, v]) =>
      Array.isArray(v)
        ? onnx.AttributeProto.create({ints: v, name, type: onnx.AttributeProto.AttributeType.INTS})
        : onnx.AttributeProto.create({i: v, name, type: onnx.AttributeProto.AttributeType.INT}),
    )
    this.nodes.push(onnx.NodeProto.create({attribute, input: inputs, name: out, opType: op, output: [out]}))
    return out
  }

  rand(): number {
    // xorshift32: deterministic, fast
    let x = this.seed
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.seed = x >>> 0
    return this.seed / 4_294_967_296
  }

  relu(x: string): string {
    return this.node('Relu', [x], {})
  }
}

/** ONNX bytes of a ResNet of the given depth (18, 34: basic blocks; 50, 101, 152: bottlenecks). */
export function onnxResNet(depth: 18 | 34 | 50 | 101 | 152, classes = 1000): Uint8Array {
  const units: Record<number, number[]> = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
  }
  const bottleneck = depth >= 50
  const g = new GraphBuilder()
  g.init('scale', [], new Float32Array([1 / 255]))
  let x = g.node('Mul', ['data', 'scale'], {})
  x = g.relu(g.conv(x, 3, 64, 7, 2))
  x = g.node('MaxPool', [x], {kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2]})
  let cin = 64
  for (const [stage, count] of units[depth].entries()) {
    const width = 64 * 2 ** stage
    const cout = bottleneck ? width * 4 : width
    for (let u = 0; u < count; u++) {
      const stride = u === 0 && stage > 0 ? 2 : 1
      let y: string
      if (bottleneck) {
        y = g.relu(g.conv(x, cin, width, 1, 1))
        y = g.relu(g.conv(y, width, width, 3, stride))
        y = g.conv(y, width, cout, 1, 1, 0.2)
      } else {
        y = g.relu(g.conv(x, cin, width, 3, stride))
        y = g.conv(y, width, cout, 3, 1, 0.2)
      }

      const shortcut = cin === cout && stride === 1 ? x : g.conv(x, cin, cout, 1, stride)
      x = g.relu(g.add(y, shortcut))
      cin = cout
    }
  }

  x = g.node('GlobalAveragePool', [x], {})
  x = g.node('Flatten', [x], {axis: 1})
  x = g.fc(x, cin, classes)
  g.node('Softmax', [x], {axis: 1}, 'prob')
  const dim = (d: number | string) => (typeof d === 'number' ? {dimValue: d} : {dimParam: d})
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: {elemType: onnx.TensorProto.DataType.FLOAT, shape: {dim: dims.map((d) => dim(d))}},
  })
  const graph = onnx.GraphProto.create({
    initializer: g.initializers,
    input: [onnx.ValueInfoProto.create({name: 'data', type: tensorType(['N', 3, 224, 224])})],
    name: `icc-bench-resnet${depth}`,
    node: g.nodes,
    output: [onnx.ValueInfoProto.create({name: 'prob', type: tensorType(['N', classes])})],
  })
  const model = onnx.ModelProto.create({
    graph,
    irVersion: 7,
    opsetImport: [{domain: '', version: 13}],
    producerName: 'icc-bench',
  })
  return onnx.ModelProto.encode(model).finish()
}

export async function writeOnnxResNet(path: string, depth: 18 | 50, classes = 1000): Promise<string> {
  await writeFile(path, onnxResNet(depth, classes))
  return path
}
