
Bout_f16_rawJfAÀ™ºœ¾ºAá½