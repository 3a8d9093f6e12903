import { expect } from 'chai';
import { parseBoxes, splitThinking } from '../../processors/answer';

describe('answer helpers', () => {
  it('splits the <think> reasoning from the answer', () => {
    expect(splitThinking('<think>It is round and red.</think><answer>red</answer>')).to.deep.equal({ reasoning: 'It is round and red.', answer: 'red' });
    expect(splitThinking('\nblue')).to.deep.equal({ reasoning: '', answer: 'blue' });
    expect(splitThinking('<think>cut off mid-thought')).to.deep.equal({ reasoning: 'cut off mid-thought', answer: '' });
  });

  it('reads 0-1000 box coordinates as pixels of the original image', () => {
    const text = 'The dog is at <|begin_of_box|>[[100,200,500,1000]]<|end_of_box|> and <|begin_of_box|>[0, 0, 250, 500]<|end_of_box|>';
    expect(parseBoxes(text, 640, 480)).to.deep.equal([
      { x1: 64, y1: 96, x2: 320, y2: 480 },
      { x1: 0, y1: 0, x2: 160, y2: 240 },
    ]);
    expect(parseBoxes('<|begin_of_box|>[1,2]<|end_of_box|>', 10, 10)).to.deep.equal([]);
  });
});
