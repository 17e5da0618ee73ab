#!/usr/bin/env python3
"""Random texts for the tokenizer differential runs (README.md next to this file).

usage: gen_texts.py N SEED OUT  -- writes every single byte, then N random texts, as
(u32 little-endian length, bytes) records: mixed scripts, combining marks, emoji, odd
whitespace, digits, contractions, special-token strings, now and then invalid UTF-8.
"""
import random, struct, sys
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
blocks = [((0x20,0x7E),30),((0x09,0x0D),4),((0xA0,0xFF),4),((0x100,0x24F),3),((0x300,0x36F),3),((0x370,0x3FF),2),
          ((0x400,0x4FF),3),((0x600,0x6FF),2),((0x900,0x97F),2),((0xE00,0xE7F),1),((0x1100,0x11FF),1),((0x2000,0x206F),3),
          ((0x3000,0x303F),2),((0x3040,0x30FF),2),((0x4E00,0x9FFF),4),((0xAC00,0xD7A3),2),((0xFF00,0xFFEF),2),
          ((0x1F300,0x1FAFF),3),((0x378,0x37F),1),((0xE000,0xE0FF),1),((0x10000,0x1007F),1),((0xE0000,0xE007F),1),((0x0,0x1F),2),((0x80,0x9F),1)]
words = ["the"," the","The"," The","HELLO","'s","'S","'ll","'Re","n't"," don't","I'm"," 123"," 4567","12345678","3.14","  ","   ","\n\n"," \n","\r\n","\t\t","...","!!!","?!"," ,"," .","<|im_start|>","<s>","</s>","<start_of_turn>","[CLS]","<|endoftext|>","▁","Ġ","Ċ","ﬁ","ǅ","ß","İ","ÉÉA","ABCdef","camelCase","URLPath","x_y","a/b//c","a\u0301","e\u0308\u0301","👍🏽","👨‍👩‍👧","\u00a0","\u3000","\u0085","\u2028","\u200b","\ufeff","\ufffd","   x","\n   \n","a\u0085b"]
def rnd_cp():
    (lo,hi), = random.choices([b for b,w in blocks],[w for b,w in blocks])
    return chr(random.randint(lo,hi))
def text():
    k = random.random()
    n = random.choice([0,1,2,3,5,8,13,21,40,80])
    parts=[]
    for _ in range(n):
        r=random.random()
        if r<0.45: parts.append(rnd_cp())
        elif r<0.8: parts.append(random.choice(words))
        else: parts.append(''.join(random.choice('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ') for _ in range(random.randint(1,8))))
    b=''.join(parts).encode('utf-8','surrogatepass')
    if random.random()<0.1:
        i=random.randint(0,len(b)); b=b[:i]+bytes([random.randint(0x80,0xFF)])+b[i:]
    if random.random()<0.03:
        b=b+b'\xed\xa0\x80'
    return b
recs=[]
N = int(sys.argv[1])
for i in range(256): recs.append(bytes([i]))
for i in range(N): recs.append(text())
out=open(sys.argv[3],'wb')
for r in recs: out.write(struct.pack('<I',len(r))+r)
print(len(recs))
