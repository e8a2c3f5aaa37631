defmodule ObjectStoreX.KitAssertionsTest do
  # The kit's assertions: they pass on what they should, and their failures say what differs.
  use ObjectStoreX.Case, async: true

  alias ExUnit.AssertionError

  test "the default store is a fresh memory store, one per test", %{store: store} do
    assert %ObjectStoreX.Store{backend: :memory, prefix: nil} = store
    assert ObjectStoreX.list!(store) == []
  end

  describe "assert_object/3" do
    setup %{store: store} do
      :ok = ObjectStoreX.put(store, "r.csv", "date,total\n2025-01-31,42\n")
      :ok
    end

    test "passes on equal bytes, a matching regex, a truthy function; returns the bytes", %{
      store: store
    } do
      data = "date,total\n2025-01-31,42\n"
      assert assert_object(store, "r.csv", data) == data
      assert assert_object(store, "r.csv", ~r/^date,total\n/) == data
      assert assert_object(store, "r.csv", &String.ends_with?(&1, "42\n")) == data
    end

    test "a binary that differs: both sizes and the first differing offset", %{store: store} do
      error =
        assert_raise AssertionError, fn ->
          assert_object(store, "r.csv", "date,total\n2025-01-31,43\n")
        end

      assert error.message =~ ~s(object "r.csv" differs from the expected bytes)
      assert error.message =~ "expected size: 25 bytes"
      assert error.message =~ "actual size:   25 bytes"
      assert error.message =~ "first difference at byte offset 23"
      assert error.message =~ ~s(expected from there: "3\\n")
      assert error.message =~ ~s(actual from there:   "2\\n")

      error = assert_raise AssertionError, fn -> assert_object(store, "r.csv", "date") end
      assert error.message =~ "expected size: 4 bytes"
      assert error.message =~ "first difference at byte offset 4"
      assert error.message =~ "expected from there: (end of the object)"
    end

    test "binary data is shown as bytes", %{store: store} do
      :ok = ObjectStoreX.put(store, "b.bin", <<0, 1, 2, 255>>)
      error = assert_raise AssertionError, fn -> assert_object(store, "b.bin", <<0, 1, 3>>) end
      assert error.message =~ "first difference at byte offset 2"
      assert error.message =~ "<<2, 255>>"
    end

    test "a regex or function that does not match", %{store: store} do
      error = assert_raise AssertionError, fn -> assert_object(store, "r.csv", ~r/^id,/) end
      assert error.message =~ ~s[object "r.csv" (25 bytes) does not match ~r/^id,/]
      assert error.message =~ ~s(starts with: "date,total)

      error = assert_raise AssertionError, fn -> assert_object(store, "r.csv", &(&1 == "")) end
      assert error.message =~ "does not satisfy the function given"
    end

    test "a missing object, a failing read, a bad expectation", %{store: store} do
      error = assert_raise AssertionError, fn -> assert_object(store, "nope", "") end
      assert error.message == ~s(expected an object at "nope", found none)

      faulty = ObjectStoreX.Fault.wrap!(store, fail: [op: :get, reason: :timeout])
      error = assert_raise AssertionError, fn -> assert_object(faulty, "r.csv", "") end
      assert error.message =~ ~s(could not read "r.csv": timeout)

      error = assert_raise AssertionError, fn -> assert_object(store, "r.csv", 42) end
      assert error.message =~ "expects a binary, a Regex or a 1-arity function, got: 42"
    end
  end

  describe "refute_object/2" do
    test "passes when there is no object, and says what is there otherwise", %{store: store} do
      assert refute_object(store, "x")
      :ok = ObjectStoreX.put(store, "x", "12345")
      error = assert_raise AssertionError, fn -> refute_object(store, "x") end
      assert error.message == ~s(expected no object at "x", found one of 5 bytes)
    end
  end

  describe "assert_objects/3" do
    setup %{store: store} do
      for p <- ["out/a.csv", "out/b.csv", "out/sub/c.csv", "other.txt"],
          do: :ok = ObjectStoreX.put(store, p, p)

      :ok
    end

    test "passes on exactly the paths under the prefix, in any order", %{store: store} do
      assert assert_objects(store, "out/", ["out/sub/c.csv", "out/a.csv", "out/b.csv"]) ==
               ["out/a.csv", "out/b.csv", "out/sub/c.csv"]

      assert length(
               assert_objects(store, nil, [
                 "other.txt" | ObjectStoreX.list!(store, prefix: "out") |> Enum.map(& &1.location)
               ])
             ) == 4

      assert assert_objects(store, "none", []) == []
    end

    test "shows the missing and the unexpected paths", %{store: store} do
      error =
        assert_raise AssertionError, fn ->
          assert_objects(store, "out", ["out/a.csv", "out/z.csv"])
        end

      assert error.message =~ ~s(objects under "out" are not the ones expected)
      assert error.message =~ ~s(missing:    ["out/z.csv"])
      assert error.message =~ ~s(unexpected: ["out/b.csv", "out/sub/c.csv"])
    end
  end
end
