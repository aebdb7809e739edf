/**
 * Test helper: the connector's preprocessing run by real OpenCV (Debian's python3-opencv through /usr/bin/python3,
 * started with the project's process wrapper): `cv2.imdecode(IMREAD_COLOR)`, BGR -> RGB, and
 * `cv2.resize(INTER_LINEAR)` to the model's size. Also JPEG encoding with libjpeg-turbo's `cjpeg`
 * (libjpeg-turbo-progs), for the chroma subsamplings sharp cannot write (4:2:2).
 */
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {run, runChecked} from '../../src/system.js'
import {PYTHON} from './lambda.js'

/** One image for OpenCV; `width`/`height` 0 means decode only (no resize). */
export interface OpenCvJob {
  bytes: Uint8Array
  height: number
  width: number
}

/** What OpenCV made of one image: RGB bytes and size, or undefined when imdecode refused it. */
export type OpenCvResult = undefined | {data: Uint8Array; height: number; width: number}

const SCRIPT = `
import json, sys, cv2, numpy as np
jobs = json.load(sys.stdin)
out = []
for job in jobs:
    img = cv2.imdecode(np.fromfile(job['path'], dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        out.append(None)
        continue
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if job['width']:
        img = cv2.resize(img, (job['width'], job['height']), interpolation=cv2.INTER_LINEAR)
    np.ascontiguousarray(img).tofile(job['path'] + '.rgb')
    out.append([img.shape[1], img.shape[0]])
print(json.dumps(out))
`

/** Decode (and resize) every job with OpenCV, in one Python process. */
export async function openCvPreprocess(jobs: OpenCvJob[]): Promise<OpenCvResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'icc-opencv-'))
  try {
    const list = await Promise.all(
      jobs.map(async (job, i) => {
        const path = join(dir, `${i}.img`)
        await writeFile(path, job.bytes)
        return {height: job.height, path, width: job.width}
      }),
    )
    const stdout = await runChecked(PYTHON, ['-c', SCRIPT], {input: JSON.stringify(list), timeoutMs: 120_000})
    const shapes = JSON.parse(stdout) as Array<[number, number] | null>
    return Promise.all(
      shapes.map(async (shape, i) =>
        shape ? {data: await readFile(`${list[i].path}.rgb`), height: shape[1], width: shape[0]} : undefined,
      ),
    )
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}

/** Whether python3-opencv is installed (the parity tests need it; .ci/run installs it). */
export async function haveOpenCv(): Promise<boolean> {
  try {
    return (await run(PYTHON, ['-c', 'import cv2'])).exitCode === 0
  } catch {
    return false
  }
}

/** Encode raw RGB pixels as JPEG with cjpeg: `sample` is cjpeg's -sample (2x2 = 4:2:0, 2x1 = 4:2:2, 1x1 = 4:4:4). */
export async function cjpeg(
  pixels: Uint8Array,
  width: number,
  height: number,
  options: {grayscale?: boolean; progressive?: boolean; quality?: number; sample: string},
): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'icc-cjpeg-'))
  try {
    const ppm = join(dir, 'in.ppm')
    const out = join(dir, 'out.jpg')
    await writeFile(ppm, Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`), pixels]))
    const args = ['-quality', String(options.quality ?? 90), '-sample', options.sample, '-outfile', out]
    if (options.progressive) args.push('-progressive')
    if (options.grayscale) args.push('-grayscale')
    await runChecked('cjpeg', [...args, ppm], {timeoutMs: 60_000})
    return await readFile(out)
  } finally {
    await rm(dir, {force: true, recursive: true})
  }
}
