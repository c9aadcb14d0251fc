/* Test support only: a byte-oriented shim over Debian's libwolfssl
 * (wolfCrypt ECCSI and SAKKE) so that mcx-ibc's interop tests and
 * side-by-side benchmark can call it without knowing its structures,
 * whose layout depends on the library's build options (options.h).
 *
 * Formats: points as 0x04 || X || Y (P-256: 65 octets; SAKKE: 257),
 * scalars big-endian (ECCSI SSK: 32 octets), ECCSI signatures as in RFC
 * 6507 (r || s || PVT, 129 octets), SAKKE encapsulated data as in RFC
 * 6508 (R || H, 273 octets). Every function returns 0 on success or a
 * negative wolfCrypt error code. */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/types.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/eccsi.h>
#include <wolfssl/wolfcrypt/sakke.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <stdlib.h>
#include <string.h>

#define SHIM_BAD (-1000)

/* ---- ECCSI ---------------------------------------------------------- */

struct mcxw_eccsi {
    EccsiKey key;
    WC_RNG rng;
    int have_rng;
};

/* A signer (ssk, pvt given) or a verifier (ssk NULL) for `id` under
 * `kpak`; the identity hash HS is computed once here. */
struct mcxw_eccsi *mcxw_eccsi_new(const byte *kpak, word32 kpak_len,
                                  const byte *id, word32 id_len,
                                  const byte *ssk, word32 ssk_len,
                                  const byte *pvt, word32 pvt_len, int *err)
{
    struct mcxw_eccsi *c = calloc(1, sizeof(*c));
    mp_int ssk_int;
    ecc_point *pvt_point = NULL;
    byte hash[WC_MAX_DIGEST_SIZE];
    byte hash_len = sizeof(hash);
    int ret;

    if (c == NULL) {
        *err = SHIM_BAD;
        return NULL;
    }
    ret = wc_InitEccsiKey(&c->key, NULL, INVALID_DEVID);
    if (ret == 0)
        ret = wc_ImportEccsiPublicKey(&c->key, kpak, kpak_len, 1);
    if (ret == 0 && ssk != NULL && mp_init(&ssk_int) == 0) {
        ret = wc_InitRng(&c->rng);
        c->have_rng = ret == 0;
        pvt_point = wc_ecc_new_point();
        if (ret == 0 && pvt_point == NULL)
            ret = SHIM_BAD;
        if (ret == 0)
            ret = wc_DecodeEccsiSsk(&c->key, ssk, ssk_len, &ssk_int);
        if (ret == 0)
            ret = wc_DecodeEccsiPvt(&c->key, pvt, pvt_len, pvt_point);
        if (ret == 0)
            ret = wc_SetEccsiPair(&c->key, &ssk_int, pvt_point);
        if (ret == 0)
            ret = wc_HashEccsiId(&c->key, WC_HASH_TYPE_SHA256, id, id_len,
                                 pvt_point, hash, &hash_len);
        if (ret == 0)
            ret = wc_SetEccsiHash(&c->key, hash, hash_len);
        mp_forcezero(&ssk_int);
        if (pvt_point != NULL)
            wc_ecc_del_point(pvt_point);
    } else if (ret == 0 && ssk != NULL) {
        ret = SHIM_BAD;
    }
    if (ret != 0) {
        if (c->have_rng)
            wc_FreeRng(&c->rng);
        wc_FreeEccsiKey(&c->key);
        free(c);
        *err = ret;
        return NULL;
    }
    *err = 0;
    return c;
}

void mcxw_eccsi_free(struct mcxw_eccsi *c)
{
    if (c == NULL)
        return;
    if (c->have_rng)
        wc_FreeRng(&c->rng);
    wc_FreeEccsiKey(&c->key);
    free(c);
}

/* Signs `msg` (sig: 129 octets). */
int mcxw_eccsi_sign(struct mcxw_eccsi *c, const byte *msg, word32 msg_len,
                    byte *sig, word32 *sig_len)
{
    if (!c->have_rng)
        return SHIM_BAD;
    return wc_SignEccsiHash(&c->key, &c->rng, WC_HASH_TYPE_SHA256, msg,
                            msg_len, sig, sig_len);
}

/* Verifies `sig` on `msg` by `id`: HS from the PVT the signature
 * carries (as a receiver does), then the check. *valid: 1 or 0. */
int mcxw_eccsi_verify(struct mcxw_eccsi *c, const byte *id, word32 id_len,
                      const byte *msg, word32 msg_len, const byte *sig,
                      word32 sig_len, int *valid)
{
    ecc_point *pvt = wc_ecc_new_point();
    byte hash[WC_MAX_DIGEST_SIZE];
    byte hash_len = sizeof(hash);
    int ret = pvt == NULL ? SHIM_BAD : 0;

    *valid = 0;
    if (ret == 0)
        ret = wc_DecodeEccsiPvtFromSig(&c->key, sig, sig_len, pvt);
    if (ret == 0)
        ret = wc_HashEccsiId(&c->key, WC_HASH_TYPE_SHA256, id, id_len, pvt,
                             hash, &hash_len);
    if (ret == 0)
        ret = wc_SetEccsiHash(&c->key, hash, hash_len);
    if (ret == 0)
        ret = wc_VerifyEccsiHash(&c->key, WC_HASH_TYPE_SHA256, msg, msg_len,
                                 sig, sig_len, valid);
    if (pvt != NULL)
        wc_ecc_del_point(pvt);
    return ret;
}

/* ---- SAKKE ---------------------------------------------------------- */

struct mcxw_sakke {
    SakkeKey key;
    ecc_point *rsk;
    byte *table;
};

/* A sender toward `id` (rsk NULL) or the receiver `id` holding `rsk`,
 * under the KMS public key `z`. With `table` set, the receiver also
 * precomputes its RSK table (wolfCrypt's fastest decapsulation). */
struct mcxw_sakke *mcxw_sakke_new(const byte *z, word32 z_len, const byte *id,
                                  word16 id_len, const byte *rsk,
                                  word32 rsk_len, int table, int *err)
{
    struct mcxw_sakke *c = calloc(1, sizeof(*c));
    word32 table_len = 0;
    int ret;

    if (c == NULL) {
        *err = SHIM_BAD;
        return NULL;
    }
    ret = wc_InitSakkeKey_ex(&c->key, 128, ECC_SAKKE_1, NULL, INVALID_DEVID);
    if (ret == 0)
        ret = wc_ImportSakkePublicKey(&c->key, z, z_len, 1);
    if (ret == 0)
        ret = wc_SetSakkeIdentity(&c->key, id, id_len);
    if (ret == 0 && rsk != NULL) {
        c->rsk = wc_ecc_new_point();
        if (c->rsk == NULL)
            ret = SHIM_BAD;
        if (ret == 0)
            ret = wc_DecodeSakkeRsk(&c->key, rsk, rsk_len, c->rsk);
        if (ret == 0 && table) {
            ret = wc_GenerateSakkeRskTable(&c->key, c->rsk, NULL, &table_len);
            if (ret == LENGTH_ONLY_E) {
                c->table = malloc(table_len);
                ret = c->table == NULL ? SHIM_BAD : 0;
            }
            if (ret == 0)
                ret = wc_GenerateSakkeRskTable(&c->key, c->rsk, c->table,
                                               &table_len);
        }
        if (ret == 0)
            ret = wc_SetSakkeRsk(&c->key, c->rsk, c->table, table_len);
    }
    if (ret != 0) {
        if (c->rsk != NULL)
            wc_ecc_del_point(c->rsk);
        free(c->table);
        wc_FreeSakkeKey(&c->key);
        free(c);
        *err = ret;
        return NULL;
    }
    *err = 0;
    return c;
}

void mcxw_sakke_free(struct mcxw_sakke *c)
{
    if (c == NULL)
        return;
    wc_FreeSakkeKey(&c->key);
    if (c->rsk != NULL)
        wc_ecc_del_point(c->rsk);
    free(c->table);
    free(c);
}

/* SED (273 octets) of the 16-octet `ssv` toward the sender's id. */
int mcxw_sakke_encapsulate(struct mcxw_sakke *c, const byte *ssv, byte *sed)
{
    byte h[16];
    word16 auth_len = 257;
    int ret;

    memcpy(h, ssv, sizeof(h));
    ret = wc_MakeSakkeEncapsulatedSSV(&c->key, WC_HASH_TYPE_SHA256, h,
                                      sizeof(h), sed, &auth_len);
    if (ret == 0 && auth_len != 257)
        ret = SHIM_BAD;
    if (ret == 0)
        memcpy(sed + 257, h, sizeof(h));
    return ret;
}

/* The SSV (16 octets) a 273-octet SED carries to the receiver. */
int mcxw_sakke_decapsulate(struct mcxw_sakke *c, const byte *sed, byte *ssv)
{
    memcpy(ssv, sed + 257, 16);
    return wc_DeriveSakkeSSV(&c->key, WC_HASH_TYPE_SHA256, ssv, 16, sed, 257);
}
