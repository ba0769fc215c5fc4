unsigned long uk_rand(void);
