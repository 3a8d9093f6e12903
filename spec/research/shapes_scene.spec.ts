import { expect } from 'chai';
import { Example, Scene, answerAbout, bindingGroup, firstInRaster, place, rng, splitExample } from '../../research/shapes/shapes_scene';

describe('the built-in task (research/shapes/shapes_scene)', () => {
  const rand = rng(1);
  // row 0 = top, col 0 = left
  const circle = place('circle', 'red', 0, 0, rand);
  const square = place('square', 'blue', 3, 1, rand);
  const triangle = place('triangle', 'red', 1, 3, rand);
  const ask = (kind: Example['kind'], question: string): Example => ({ kind, question, answer: '' });

  it('groups a question that names a shape by whether its answer depends on which shape is meant', () => {
    const scene: Scene = { shapes: [circle, square, triangle] };
    expect(bindingGroup(ask('vertical', 'Is the circle at the top or the bottom?'), { shapes: [circle] })).to.equal('one shape');
    // circle top-left, square bottom-left, triangle top-right
    expect(bindingGroup(ask('horizontal', 'Is the circle on the left or the right?'), scene)).to.equal('several, binding');
    expect(bindingGroup(ask('horizontal', 'Is the square on the left or the right?'), { shapes: [circle, square] })).to.equal('several, same answer');
    expect(bindingGroup(ask('vertical', 'Is the square at the top or the bottom?'), { shapes: [circle, square] })).to.equal('several, binding');
    expect(bindingGroup(ask('colour', 'What colour is the triangle?'), { shapes: [circle, triangle] })).to.equal('several, same answer');
    expect(bindingGroup(ask('colour', 'What colour is the triangle?'), scene)).to.equal('several, binding');
    expect(bindingGroup(ask('count', 'How many shapes are there?'), scene)).to.equal(undefined);
    expect(bindingGroup(ask('shape', 'Which shape is blue?'), scene)).to.equal(undefined);
  });

  it('names the question when it names no shape of the scene', () => {
    expect(() => bindingGroup(ask('colour', 'What colour is the square?'), { shapes: [circle] })).to.throw(/What colour is the square\?/);
  });

  it('finds the first shape in reading order and the answers about one shape', () => {
    // the triangle (row 1) comes before the square (row 3) whatever their order in the scene; the circle (row 0) first
    expect(firstInRaster({ shapes: [square, triangle] })).to.equal(triangle);
    expect(firstInRaster({ shapes: [square, triangle, circle] })).to.equal(circle);
    expect(firstInRaster({ shapes: [place('square', 'red', 2, 3, rand), place('circle', 'red', 2, 1, rand)] }).shape).to.equal('circle');
    expect([answerAbout('colour', square), answerAbout('horizontal', square), answerAbout('vertical', square)]).to.deep.equal(['blue', 'left', 'bottom']);
    expect([answerAbout('horizontal', triangle), answerAbout('vertical', triangle)]).to.deep.equal(['right', 'top']);
  });

  it('draws each split from its own seeds, the same on every call', () => {
    const draw = (i: number) => JSON.stringify([splitExample('val', i).scene, splitExample('val', i).question]);
    expect(draw(7)).to.equal(draw(7));
    expect(draw(7)).to.not.equal(draw(8));
    const scenes = (['train', 'val', 'test'] as const).map((s) => JSON.stringify(splitExample(s, 0).scene));
    expect(new Set(scenes).size).to.equal(3);
  });
});
