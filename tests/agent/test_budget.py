"""Requests composed within the server's limits: images and tokens as Qwen3-VL counts them."""

from __future__ import annotations

import io

import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock
from PIL import Image

from agent.budget import BudgetExceeded, RequestBudget, image_tokens, request_tokens


def jpeg(size=(256, 256)) -> ImageBlock:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buffer, "JPEG")
    return ImageBlock(image=buffer.getvalue(), image_mimetype="image/jpeg")


def conversation(examples: int = 6):
    photo = jpeg((1024, 768))
    question = ChatMessage(role="user", blocks=[photo, TextBlock(text="Any scratch?")])
    tools = ChatMessage(role="user", blocks=[b for i in range(examples)
                                             for b in (TextBlock(text=f"\nExample {i + 1} · id r-{i}\n"), jpeg())])
    return [ChatMessage(role="system", content="You inspect cars."), question, tools], photo


def images_in(messages) -> int:
    return sum(isinstance(b, ImageBlock) for m in messages for b in m.blocks)


def test_image_tokens_one_per_32_pixels_plus_delimiters():
    assert image_tokens(1024, 768) == 32 * 24 + 2
    assert image_tokens(250, 250) == 8 * 8 + 2


def test_no_limits_sends_everything_unchanged():
    messages, photo = conversation()
    fitted = RequestBudget().fit(messages, keep={id(photo)}, current=1)
    assert fitted.messages == messages and not fitted.omitted and fitted.images == 7


def test_image_limit_keeps_the_photo_and_the_newest_examples_and_names_the_rest():
    messages, photo = conversation()
    fitted = RequestBudget(max_images=4).fit(messages, keep={id(photo)}, current=1)
    assert images_in(fitted.messages) == 4 and fitted.messages[1].blocks[0] is photo
    texts = [b.text for b in fitted.messages[2].blocks if isinstance(b, TextBlock)]
    omitted = [t for t in texts if "image omitted" in t]
    assert len(omitted) == 3 and "Example 1 · id r-0" in omitted[0] and "Example 3" in omitted[2]
    assert images_in(messages) == 7  # the conversation itself is unchanged


def test_token_limit_learned_from_the_server_message_with_its_count():
    messages, photo = conversation()
    budget = RequestBudget(reply_tokens=1000)
    ours = request_tokens(messages)
    assert budget.learn_context(3000, server_tokens=ours * 2, our_tokens=ours)  # the server counts double ours
    assert budget.max_tokens == 3000 - 1000 and budget.scale == pytest.approx(2.0)
    fitted = budget.fit(messages, keep={id(photo)}, current=1)
    assert fitted.tokens <= budget.max_tokens and fitted.messages[1].blocks[0] is photo
    assert 0 < len(fitted.omitted) < 6  # some examples went, the newest stayed
    assert not budget.learn_context(4096, server_tokens=ours * 2, our_tokens=ours)  # a looser limit is no news
    assert budget.learn_context(3000, server_tokens=None, our_tokens=ours // 2)  # "more than 3000" for a small one


def test_earlier_conversation_goes_as_a_whole_when_images_are_not_enough():
    messages, photo = conversation(examples=0)
    old, _ = conversation(examples=2)
    history = [*old[1:], ChatMessage(role="assistant", content="x" * 20000)]
    full = [messages[0], *history, messages[1]]
    fitted = RequestBudget(max_tokens=1500).fit(full, keep={id(photo)}, current=len(history) + 1)
    assert fitted.messages[0].content == full[0].content and fitted.messages[-1].blocks[0] is photo
    assert "earlier conversation was left out" in fitted.messages[1].content


def test_a_request_that_cannot_fit_at_all_says_which_limit():
    messages, photo = conversation(examples=0)
    with pytest.raises(BudgetExceeded) as info:
        RequestBudget(max_tokens=100).fit(messages, keep={id(photo)}, current=1)
    assert info.value.problem == "tokens" and info.value.limit == 100
