
Bout_f16_typedJfAÀ™ºœ¾ºAá½