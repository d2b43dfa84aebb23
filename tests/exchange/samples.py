"""Binance's documented example answers, as raw JSON text (so big ids stay exact)."""

from __future__ import annotations

SPOT_ALGO_OPEN = """{"total": 1, "orders": [{"algoId": 14517, "symbol": "ETHUSDT", "side": "SELL",
 "totalQty": "5.000", "executedQty": "0.000", "executedAmt": "0.00000000", "avgPrice": "0.00",
 "clientAlgoId": "d7096549481642f8a0bb69e9e2e31f2e", "bookTime": 1649756817004, "endTime": 0,
 "algoStatus": "WORKING", "algoType": "VP", "urgency": "LOW"}]}"""

SPOT_ALGO_HISTORY = """{"total": 1, "orders": [{"algoId": 14518, "symbol": "BNBUSDT",
 "side": "BUY", "totalQty": "100.00", "executedQty": "0.00", "executedAmt": "0.00000000",
 "avgPrice": "0.000", "clientAlgoId": "acacab56b3c44bef9f6a8f8ebd2a8408",
 "bookTime": 1649757019503, "endTime": 1649757088101, "algoStatus": "CANCELLED",
 "algoType": "VP", "urgency": "LOW"}]}"""

SUB_ORDERS = """{"total": 1, "executedQty": "1.000", "executedAmt": "3229.44000000",
 "subOrders": [{"algoId": 13723, "orderId": 8389765519993908929, "orderStatus": "FILLED",
 "executedQty": "1.000", "executedAmt": "3229.44000000", "feeAmt": "-1.61471999",
 "feeAsset": "USDT", "bookTime": 1649319001964, "avgPrice": "3229.44", "side": "SELL",
 "symbol": "ETHUSDT", "subId": 1, "timeInForce": "IMMEDIATE_OR_CANCEL", "origQty": "1.000"}]}"""

ORDER = """{"symbol": "LTCBTC", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1",
 "price": "0.1", "origQty": "1.0", "executedQty": "0.0", "cummulativeQuoteQty": "0.0",
 "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "stopPrice": "0.0",
 "icebergQty": "0.0", "time": 1499827319559, "updateTime": 1499827319559, "isWorking": true,
 "workingTime": 1499827319559, "origQuoteOrderQty": "0.000000",
 "selfTradePreventionMode": "NONE"}"""

ORDER_FULL = """{"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1,
 "clientOrderId": "pk-entry-0123", "transactTime": 1507725176595, "price": "0.00000000",
 "origQty": "10.00000000", "executedQty": "10.00000000", "cummulativeQuoteQty": "10.00000000",
 "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "SELL",
 "workingTime": 1507725176595, "selfTradePreventionMode": "NONE",
 "fills": [{"price": "4000.00000000", "qty": "1.00000000", "commission": "4.00000000",
 "commissionAsset": "USDT", "tradeId": 56}]}"""

CANCELED_ORDER = """{"symbol": "LTCBTC", "origClientOrderId": "myOrder1", "orderId": 4,
 "orderListId": -1, "clientOrderId": "cancelMyOrder1", "transactTime": 1684804350068,
 "price": "2.00000000", "origQty": "1.00000000", "executedQty": "0.00000000",
 "cummulativeQuoteQty": "0.00000000", "status": "CANCELED", "timeInForce": "GTC",
 "type": "LIMIT", "side": "BUY", "selfTradePreventionMode": "NONE"}"""

OCO = """{"orderListId": 1, "contingencyType": "OCO", "listStatusType": "EXEC_STARTED",
 "listOrderStatus": "EXECUTING", "listClientOrderId": "lH1YDkuQKWiXVXHPSKYEIp",
 "transactionTime": 1710485608839, "symbol": "LTCBTC",
 "orders": [{"symbol": "LTCBTC", "orderId": 10, "clientOrderId": "44nZvqpemY7sVYgPYbvPih"},
  {"symbol": "LTCBTC", "orderId": 11, "clientOrderId": "NuMp0nVYnciDiFmVqfpBqK"}],
 "orderReports": [{"symbol": "LTCBTC", "orderId": 10, "orderListId": 1,
  "clientOrderId": "44nZvqpemY7sVYgPYbvPih", "transactTime": 1710485608839,
  "price": "1.00000000", "origQty": "5.00000000", "executedQty": "0.00000000",
  "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "0.00000000", "status": "NEW",
  "timeInForce": "GTC", "type": "STOP_LOSS_LIMIT", "side": "SELL", "stopPrice": "1.00000000",
  "workingTime": -1, "icebergQty": "1.00000000", "selfTradePreventionMode": "NONE"},
  {"symbol": "LTCBTC", "orderId": 11, "orderListId": 1, "clientOrderId": "NuMp0nVYnciDiFmVqfpBqK",
  "transactTime": 1710485608839, "price": "3.00000000", "origQty": "5.00000000",
  "executedQty": "0.00000000", "origQuoteOrderQty": "0.000000",
  "cummulativeQuoteQty": "0.00000000", "status": "NEW", "timeInForce": "GTC",
  "type": "LIMIT_MAKER", "side": "SELL", "workingTime": 1710485608839,
  "selfTradePreventionMode": "NONE"}]}"""

ORDER_LIST = """{"orderListId": 27, "contingencyType": "OCO", "listStatusType": "EXEC_STARTED",
 "listOrderStatus": "EXECUTING", "listClientOrderId": "h2USkA5YQpaXHPIrkd96xE",
 "transactionTime": 1565245656253, "symbol": "LTCBTC",
 "orders": [{"symbol": "LTCBTC", "orderId": 4, "clientOrderId": "qD1gy3kc3Gx0rihm9Y3xwS"},
  {"symbol": "LTCBTC", "orderId": 5, "clientOrderId": "ARzZ9I00CPM8i3NhmU9Ega"}]}"""

CONDITIONAL = """{"algoId": 2146760, "clientAlgoId": "6B2I9XVcJpCjqPAJ4YoFX7",
 "algoType": "CONDITIONAL", "orderType": "TAKE_PROFIT", "symbol": "BNBUSDT", "side": "SELL",
 "positionSide": "BOTH", "timeInForce": "GTC", "quantity": "0.01", "algoStatus": "NEW",
 "triggerPrice": "750.000", "price": "750.000", "icebergQuantity": null,
 "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE",
 "priceMatch": "NONE", "closePosition": false, "priceProtect": false, "reduceOnly": false,
 "activatePrice": "", "callbackRate": "", "createTime": 1750485492076,
 "updateTime": 1750485492076, "triggerTime": 0, "goodTillDate": 0}"""

FUTURES_ORDER = """{"clientOrderId": "testOrder", "cumQty": "0", "cumQuote": "0",
 "executedQty": "0", "orderId": 22542179, "avgPrice": "0.00000", "origQty": "10",
 "price": "0", "reduceOnly": false, "side": "BUY", "positionSide": "SHORT", "status": "NEW",
 "stopPrice": "9300", "closePosition": false, "symbol": "BTCUSDT", "timeInForce": "GTD",
 "type": "TRAILING_STOP_MARKET", "origType": "TRAILING_STOP_MARKET", "activatePrice": "9020",
 "priceRate": "0.3", "updateTime": 1566818724722, "workingType": "CONTRACT_PRICE",
 "priceProtect": false, "priceMatch": "NONE", "selfTradePreventionMode": "NONE",
 "goodTillDate": 1693207680000}"""

POSITION_RISK = """[{"entryPrice": "0.00000", "breakEvenPrice": "0.0", "marginType": "isolated",
 "isAutoAddMargin": "false", "isolatedMargin": "0.00000000", "leverage": "10",
 "liquidationPrice": "0", "markPrice": "6679.50671178", "maxNotionalValue": "20000000",
 "positionAmt": "0.000", "notional": "0", "isolatedWallet": "0", "symbol": "BTCUSDT",
 "unRealizedProfit": "0.00000000", "positionSide": "BOTH", "updateTime": 0}]"""

SPOT_EXCHANGE_INFO = """{"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [],
 "symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC",
  "quoteAsset": "USDT", "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
  "ocoAllowed": true,
  "filters": [
   {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
    "tickSize": "0.01000000"},
   {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
    "stepSize": "0.00001000"},
   {"filterType": "ICEBERG_PARTS", "limit": 10},
   {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "82.50000000",
    "stepSize": "0.00000000"},
   {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10},
   {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
    "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
   {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": true,
    "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5},
   {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
   {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}]}]}"""

FUTURES_EXCHANGE_INFO = """{"timezone": "UTC", "serverTime": 1565246363776, "rateLimits": [],
 "assets": [], "symbols": [{"symbol": "BTCUSDT", "pair": "BTCUSDT",
  "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
  "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3,
  "orderTypes": ["LIMIT", "MARKET"],
  "filters": [
   {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
   {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
   {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
   {"filterType": "MAX_NUM_ORDERS", "limit": 200},
   {"filterType": "MIN_NOTIONAL", "notional": "100"},
   {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
    "multiplierDecimal": "4"}]}]}"""
